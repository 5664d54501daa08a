// Stand-in for android.graphics.Typeface (Android SDK 35): the face the app uses, for the compile
// in policy/run_tests.sh only.
package android.graphics;

public class Typeface {
    public static final Typeface MONOSPACE = null;

    private Typeface() {}
}
