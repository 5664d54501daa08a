// Stand-in for android.widget.ScrollView (Android SDK 35): its constructor and the addView it
// overrides; for the compile in policy/run_tests.sh only.
package android.widget;

import android.content.Context;
import android.view.View;

public class ScrollView extends FrameLayout {
    public ScrollView(Context context) { super(context); }

    @Override
    public void addView(View child) { throw new RuntimeException("stand-in"); }
}
