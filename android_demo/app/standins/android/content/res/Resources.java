// Stand-in for android.content.res.Resources (Android SDK 35): the member the app reads, for the
// compile in policy/run_tests.sh only.
package android.content.res;

import android.util.DisplayMetrics;

public class Resources {
    private Resources() {}

    public DisplayMetrics getDisplayMetrics() { throw new RuntimeException("stand-in"); }
}
