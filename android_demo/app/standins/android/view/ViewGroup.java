// Stand-in for android.view.ViewGroup (Android SDK 35,
// developer.android.com/reference/android/view/ViewGroup): addView's one- and two-argument
// overloads and the LayoutParams the app builds; for the compile in policy/run_tests.sh only.
package android.view;

import android.content.Context;

public abstract class ViewGroup extends View {
    public ViewGroup(Context context) { super(context); }

    public void addView(View child) { throw new RuntimeException("stand-in"); }

    public void addView(View child, int index) { throw new RuntimeException("stand-in"); }

    public void addView(View child, LayoutParams params) { throw new RuntimeException("stand-in"); }

    protected abstract void onLayout(boolean changed, int l, int t, int r, int b);

    public static class LayoutParams {
        public static final int MATCH_PARENT = -1;
        public static final int WRAP_CONTENT = -2;

        public LayoutParams(int width, int height) { throw new RuntimeException("stand-in"); }
    }

    public static class MarginLayoutParams extends LayoutParams {
        public MarginLayoutParams(int width, int height) { super(width, height); }
    }
}
