// Stand-in for android.content.BroadcastReceiver (Android SDK 35): the type of registerReceiver's
// first parameter, for the compile in policy/run_tests.sh only.
package android.content;

public abstract class BroadcastReceiver {
    public BroadcastReceiver() {}

    public abstract void onReceive(Context context, Intent intent);
}
