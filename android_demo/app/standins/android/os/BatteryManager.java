// Stand-in for android.os.BatteryManager (Android SDK 35,
// developer.android.com/reference/android/os/BatteryManager): the ACTION_BATTERY_CHANGED extras
// the app reads, for the compile in policy/run_tests.sh only.
package android.os;

public class BatteryManager {
    public static final String EXTRA_LEVEL = "level";
    public static final String EXTRA_PLUGGED = "plugged";
    public static final String EXTRA_SCALE = "scale";

    private BatteryManager() {}
}
