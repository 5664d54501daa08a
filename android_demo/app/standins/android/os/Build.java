// Stand-in for android.os.Build (Android SDK 35, developer.android.com/reference/android/os/Build):
// the fields the app reads. Like android.jar's, they are set in a static block, so they are not
// compile-time constants (VERSION_CODES are). For the compile in policy/run_tests.sh only.
package android.os;

public class Build {
    public static final String MANUFACTURER;
    public static final String MODEL;
    public static final String SOC_MANUFACTURER;
    public static final String SOC_MODEL;

    static {
        MANUFACTURER = null;
        MODEL = null;
        SOC_MANUFACTURER = null;
        SOC_MODEL = null;
    }

    public Build() {}

    public static class VERSION {
        public static final int SDK_INT;
        public static final String RELEASE;

        static {
            SDK_INT = 0;
            RELEASE = null;
        }

        public VERSION() {}
    }

    public static class VERSION_CODES {
        public static final int S = 31;

        public VERSION_CODES() {}
    }
}
