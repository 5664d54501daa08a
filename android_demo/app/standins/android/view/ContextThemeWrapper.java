// Stand-in for android.view.ContextThemeWrapper (Android SDK 35), Activity's superclass; nothing of
// its own is called. For the compile in policy/run_tests.sh only.
package android.view;

import android.content.ContextWrapper;

public class ContextThemeWrapper extends ContextWrapper {
    public ContextThemeWrapper() { super(null); }
}
