// Stand-in for android.content.res.AssetManager (Android SDK 35,
// developer.android.com/reference/android/content/res/AssetManager): the members the app calls,
// for the compile in policy/run_tests.sh only.
package android.content.res;

import android.annotation.NonNull;
import android.annotation.Nullable;
import java.io.IOException;
import java.io.InputStream;

public final class AssetManager {
    private AssetManager() {}

    public @NonNull InputStream open(@NonNull String fileName) throws IOException { throw new RuntimeException("stand-in"); }

    public @Nullable String[] list(@NonNull String path) throws IOException { throw new RuntimeException("stand-in"); }
}
