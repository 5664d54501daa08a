// Stand-in for android.content.ContextWrapper (Android SDK 35): Context's abstract members as
// ContextWrapper overrides them, with the same nullability; for the compile in policy/run_tests.sh only.
package android.content;

import android.annotation.Nullable;
import android.content.res.AssetManager;
import android.content.res.Resources;
import java.io.File;

public class ContextWrapper extends Context {
    public ContextWrapper(Context base) {}

    @Override public AssetManager getAssets() { throw new RuntimeException("stand-in"); }

    @Override public Resources getResources() { throw new RuntimeException("stand-in"); }

    @Override public Context getApplicationContext() { throw new RuntimeException("stand-in"); }

    @Override public File getFilesDir() { throw new RuntimeException("stand-in"); }

    @Override public @Nullable File getExternalFilesDir(@Nullable String type) { throw new RuntimeException("stand-in"); }

    @Override public @Nullable Intent registerReceiver(@Nullable BroadcastReceiver receiver, IntentFilter filter) { throw new RuntimeException("stand-in"); }

    @Override public void startActivity(Intent intent) { throw new RuntimeException("stand-in"); }
}
