// Stand-in for android.content.Intent (Android SDK 35, developer.android.com/reference/android/content/Intent):
// the members the app uses, for the compile in policy/run_tests.sh only.
package android.content;

public class Intent {
    public static final String ACTION_BATTERY_CHANGED = "android.intent.action.BATTERY_CHANGED";

    public Intent(Context packageContext, Class<?> cls) { throw new RuntimeException("stand-in"); }

    public int getIntExtra(String name, int defaultValue) { throw new RuntimeException("stand-in"); }
}
