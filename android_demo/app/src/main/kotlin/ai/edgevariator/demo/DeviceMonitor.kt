package ai.edgevariator.demo

import android.content.Context
import android.content.Intent
import android.content.IntentFilter
import android.os.BatteryManager
import android.os.Build
import android.os.PowerManager
import ai.edgevariator.policy.ANDROID_THERMAL_NAMES
import ai.edgevariator.policy.DeviceState
import ai.edgevariator.policy.thermalFromAndroid

/**
 * The phone as a latency profile names it, e.g. "Google Pixel 8 (Google Tensor G3), Android 15": the
 * profile's device, and so the file name (deviceSlug) of the policy calibrated from it.
 */
fun deviceName(): String {
    val soc = if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.S) " (${Build.SOC_MANUFACTURER} ${Build.SOC_MODEL})" else ""
    return "${Build.MANUFACTURER} ${Build.MODEL}$soc, Android ${Build.VERSION.RELEASE}"
}

/** What the phone reports, as read; [toState] turns it into the policy's DeviceState (or refuses it). */
data class DeviceReadings(
    val batteryLevel: Int,  // EXTRA_LEVEL out of batteryScale; -1 when the phone did not say
    val batteryScale: Int,
    val pluggedIn: Boolean,  // on external power, charging or full
    val powerSave: Boolean,
    val thermalStatus: Int,  // PowerManager.THERMAL_STATUS_*, 0..6
) {
    /** Throws DeviceStateException for a level the phone did not report: no made-up battery. */
    fun toState(budgetMs: Double?): DeviceState = DeviceState(
        battery = if (batteryLevel < 0 || batteryScale <= 0) Double.NaN else batteryLevel.toDouble() / batteryScale,
        charging = pluggedIn,
        lowPower = powerSave,
        thermal = thermalFromAndroid(thermalStatus),
        budgetMs = budgetMs,
    )

    fun describe(): String {
        val battery = if (batteryLevel < 0 || batteryScale <= 0) "unknown" else "${100 * batteryLevel / batteryScale}%"
        val thermal = ANDROID_THERMAL_NAMES.getOrNull(thermalStatus) ?: "status $thermalStatus"
        return "battery $battery${if (pluggedIn) " (plugged in)" else ""} · power save ${if (powerSave) "on" else "off"} · " +
            "thermal $thermal"
    }
}

/** Reads battery, power-save mode and thermal status; calls [onThermalChange] when Android reports a new status. */
class DeviceMonitor(private val context: Context, private val onThermalChange: () -> Unit) {
    private val power: PowerManager = checkNotNull(context.getSystemService(PowerManager::class.java)) { "no PowerManager" }
    private val thermalListener = PowerManager.OnThermalStatusChangedListener { onThermalChange() }

    fun start() = power.addThermalStatusListener(context.mainExecutor, thermalListener)

    fun stop() = power.removeThermalStatusListener(thermalListener)

    fun read(): DeviceReadings {
        // ACTION_BATTERY_CHANGED is sticky: registering no receiver returns its last value.
        val battery: Intent? = context.registerReceiver(null, IntentFilter(Intent.ACTION_BATTERY_CHANGED))
        return DeviceReadings(
            batteryLevel = battery?.getIntExtra(BatteryManager.EXTRA_LEVEL, -1) ?: -1,
            batteryScale = battery?.getIntExtra(BatteryManager.EXTRA_SCALE, -1) ?: -1,
            pluggedIn = (battery?.getIntExtra(BatteryManager.EXTRA_PLUGGED, 0) ?: 0) != 0,
            powerSave = power.isPowerSaveMode,
            thermalStatus = power.currentThermalStatus,
        )
    }
}
