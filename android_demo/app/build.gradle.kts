import org.jetbrains.kotlin.gradle.dsl.JvmTarget

plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

// The Android runtime of the executorch release the bundles are exported with (pyproject: executorch==1.4.0).
val executorchVersion = "1.4.0"

android {
    namespace = "ai.edgevariator.demo"
    compileSdk = 35

    defaultConfig {
        applicationId = "ai.edgevariator.demo"
        minSdk = 29  // PowerManager.getCurrentThermalStatus and addThermalStatusListener
        targetSdk = 35
        versionCode = 1
        versionName = "0.1"
        buildConfigField("String", "EXECUTORCH_VERSION", "\"$executorchVersion\"")
        ndk { abiFilters += listOf("arm64-v8a", "x86_64") }  // the ABIs the ExecuTorch AAR ships
    }

    buildFeatures { buildConfig = true }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    // A bundle shipped in assets/bundle is copied to internal storage; .pte stays uncompressed in the APK.
    androidResources { noCompress.add("pte") }
}

kotlin {
    compilerOptions { jvmTarget.set(JvmTarget.JVM_17) }
}

dependencies {
    implementation(project(":policy"))
    implementation("org.pytorch:executorch-android:$executorchVersion")
}
