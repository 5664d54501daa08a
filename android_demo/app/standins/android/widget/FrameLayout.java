// Stand-in for android.widget.FrameLayout (Android SDK 35), ScrollView's superclass; for the
// compile in policy/run_tests.sh only.
package android.widget;

import android.annotation.NonNull;
import android.content.Context;
import android.view.ViewGroup;

public class FrameLayout extends ViewGroup {
    public FrameLayout(@NonNull Context context) { super(context); }

    @Override
    protected void onLayout(boolean changed, int left, int top, int right, int bottom) { throw new RuntimeException("stand-in"); }
}
