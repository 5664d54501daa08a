// Stand-in for android.os.PowerManager (Android SDK 35,
// developer.android.com/reference/android/os/PowerManager): power-save mode and the thermal status
// (API 29), both addThermalStatusListener overloads; for the compile in policy/run_tests.sh only.
package android.os;

import android.annotation.NonNull;
import java.util.concurrent.Executor;

public final class PowerManager {
    private PowerManager() {}

    public boolean isPowerSaveMode() { throw new RuntimeException("stand-in"); }

    public int getCurrentThermalStatus() { throw new RuntimeException("stand-in"); }

    public void addThermalStatusListener(@NonNull OnThermalStatusChangedListener listener) { throw new RuntimeException("stand-in"); }

    public void addThermalStatusListener(@NonNull Executor executor, @NonNull OnThermalStatusChangedListener listener) {
        throw new RuntimeException("stand-in");
    }

    public void removeThermalStatusListener(@NonNull OnThermalStatusChangedListener listener) { throw new RuntimeException("stand-in"); }

    public interface OnThermalStatusChangedListener {
        void onThermalStatusChanged(int status);
    }
}
