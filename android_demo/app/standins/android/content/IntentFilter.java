// Stand-in for android.content.IntentFilter (Android SDK 35): the constructor the app calls, for
// the compile in policy/run_tests.sh only.
package android.content;

public class IntentFilter {
    public IntentFilter(String action) { throw new RuntimeException("stand-in"); }
}
