// Stand-in for android.widget.TextView (Android SDK 35,
// developer.android.com/reference/android/widget/TextView): the members the app uses, setText and
// setHint with their int (resource id) overloads; for the compile in policy/run_tests.sh only.
package android.widget;

import android.annotation.Nullable;
import android.content.Context;
import android.graphics.Typeface;
import android.view.View;

public class TextView extends View {
    public TextView(Context context) { super(context); }

    public CharSequence getText() { throw new RuntimeException("stand-in"); }

    public final void setText(CharSequence text) { throw new RuntimeException("stand-in"); }

    public final void setText(int resid) { throw new RuntimeException("stand-in"); }

    public CharSequence getHint() { throw new RuntimeException("stand-in"); }

    public final void setHint(CharSequence hint) { throw new RuntimeException("stand-in"); }

    public final void setHint(int resid) { throw new RuntimeException("stand-in"); }

    public float getTextSize() { throw new RuntimeException("stand-in"); }

    public void setTextSize(float size) { throw new RuntimeException("stand-in"); }

    public void setTextIsSelectable(boolean selectable) { throw new RuntimeException("stand-in"); }

    public Typeface getTypeface() { throw new RuntimeException("stand-in"); }

    public void setTypeface(@Nullable Typeface tf) { throw new RuntimeException("stand-in"); }

    public int getInputType() { throw new RuntimeException("stand-in"); }

    public void setInputType(int type) { throw new RuntimeException("stand-in"); }

    public int getMinLines() { throw new RuntimeException("stand-in"); }

    public void setMinLines(int minLines) { throw new RuntimeException("stand-in"); }
}
