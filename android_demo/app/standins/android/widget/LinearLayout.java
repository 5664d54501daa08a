// Stand-in for android.widget.LinearLayout (Android SDK 35,
// developer.android.com/reference/android/widget/LinearLayout): orientation and its LayoutParams;
// for the compile in policy/run_tests.sh only.
package android.widget;

import android.content.Context;
import android.view.ViewGroup;

public class LinearLayout extends ViewGroup {
    public static final int HORIZONTAL = 0;
    public static final int VERTICAL = 1;

    public LinearLayout(Context context) { super(context); }

    public int getOrientation() { throw new RuntimeException("stand-in"); }

    public void setOrientation(int orientation) { throw new RuntimeException("stand-in"); }

    @Override
    protected void onLayout(boolean changed, int l, int t, int r, int b) { throw new RuntimeException("stand-in"); }

    public static class LayoutParams extends ViewGroup.MarginLayoutParams {
        public LayoutParams(int width, int height) { super(width, height); }
    }
}
