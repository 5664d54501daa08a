// Stand-in for android.text.InputType (Android SDK 35, developer.android.com/reference/android/text/InputType):
// the flags the app combines, with the SDK's values; for the compile in policy/run_tests.sh only.
package android.text;

public interface InputType {
    int TYPE_CLASS_TEXT = 0x00000001;
    int TYPE_CLASS_NUMBER = 0x00000002;
    int TYPE_TEXT_FLAG_MULTI_LINE = 0x00020000;
    int TYPE_NUMBER_FLAG_DECIMAL = 0x00002000;
}
