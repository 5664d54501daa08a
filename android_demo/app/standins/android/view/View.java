// Stand-in for android.view.View (Android SDK 35, developer.android.com/reference/android/view/View):
// the members the app uses, for the compile in policy/run_tests.sh only.
package android.view;

import android.annotation.Nullable;
import android.content.Context;

public class View {
    public View(Context context) { throw new RuntimeException("stand-in"); }

    public boolean isEnabled() { throw new RuntimeException("stand-in"); }

    public void setEnabled(boolean enabled) { throw new RuntimeException("stand-in"); }

    public void setPadding(int left, int top, int right, int bottom) { throw new RuntimeException("stand-in"); }

    public boolean getFitsSystemWindows() { throw new RuntimeException("stand-in"); }

    public void setFitsSystemWindows(boolean fitSystemWindows) { throw new RuntimeException("stand-in"); }

    public void setOnClickListener(@Nullable OnClickListener l) { throw new RuntimeException("stand-in"); }

    public interface OnClickListener {
        void onClick(View v);
    }
}
