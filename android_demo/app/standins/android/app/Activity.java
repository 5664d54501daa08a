// Stand-in for android.app.Activity (Android SDK 35, developer.android.com/reference/android/app/Activity):
// the members the app calls or overrides, for the compile in policy/run_tests.sh only.
package android.app;

import android.annotation.Nullable;
import android.os.Bundle;
import android.view.ContextThemeWrapper;
import android.view.View;

public class Activity extends ContextThemeWrapper {
    public Activity() {}

    protected void onCreate(@Nullable Bundle savedInstanceState) { throw new RuntimeException("stand-in"); }

    protected void onResume() { throw new RuntimeException("stand-in"); }

    protected void onPause() { throw new RuntimeException("stand-in"); }

    public void setContentView(View view) { throw new RuntimeException("stand-in"); }

    public final void runOnUiThread(Runnable action) { throw new RuntimeException("stand-in"); }
}
