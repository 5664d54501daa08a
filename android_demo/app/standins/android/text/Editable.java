// Stand-in for android.text.Editable (Android SDK 35), what EditText.getText() returns (its
// GetChars and Spannable supertypes left out); for the compile in policy/run_tests.sh only.
package android.text;

public interface Editable extends CharSequence, Appendable {}
