// Stand-in for android.widget.Button (Android SDK 35), a TextView; for the compile in
// policy/run_tests.sh only.
package android.widget;

import android.content.Context;

public class Button extends TextView {
    public Button(Context context) { super(context); }
}
