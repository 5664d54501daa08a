// Stand-in for android.util.DisplayMetrics (Android SDK 35): the field the app reads, for the
// compile in policy/run_tests.sh only.
package android.util;

public class DisplayMetrics {
    public float density;

    public DisplayMetrics() {}
}
