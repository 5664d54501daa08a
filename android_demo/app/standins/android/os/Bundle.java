// Stand-in for android.os.Bundle (Android SDK 35): onCreate's parameter type, for the compile in
// policy/run_tests.sh only.
package android.os;

public final class Bundle {
    public Bundle() { throw new RuntimeException("stand-in"); }
}
