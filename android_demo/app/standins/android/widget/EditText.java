// Stand-in for android.widget.EditText (Android SDK 35): getText() narrowed to Editable, as in the
// SDK (so `editText.text = "..."` fails here as it does there); for the compile in
// policy/run_tests.sh only.
package android.widget;

import android.content.Context;
import android.text.Editable;

public class EditText extends TextView {
    public EditText(Context context) { super(context); }

    @Override
    public Editable getText() { throw new RuntimeException("stand-in"); }
}
