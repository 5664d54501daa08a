// Stand-in for android.content.Context (Android SDK 35, developer.android.com/reference/android/content/Context):
// the members the app calls, abstract where the SDK's are, for the compile in policy/run_tests.sh only.
package android.content;

import android.annotation.NonNull;
import android.annotation.Nullable;
import android.content.res.AssetManager;
import android.content.res.Resources;
import java.io.File;
import java.util.concurrent.Executor;

public abstract class Context {
    public Context() {}

    public abstract AssetManager getAssets();

    public abstract Resources getResources();

    public abstract Context getApplicationContext();

    public abstract File getFilesDir();

    @Nullable
    public abstract File getExternalFilesDir(@Nullable String type);

    @Nullable
    public abstract Intent registerReceiver(@Nullable BroadcastReceiver receiver, IntentFilter filter);

    public abstract void startActivity(Intent intent);

    public Executor getMainExecutor() { throw new RuntimeException("stand-in"); }

    public final @Nullable <T> T getSystemService(@NonNull Class<T> serviceClass) { throw new RuntimeException("stand-in"); }
}
