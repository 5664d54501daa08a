import org.jetbrains.kotlin.gradle.dsl.JvmTarget

plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "ai.edgevariator.demo"
    compileSdk = 35

    defaultConfig {
        applicationId = "ai.edgevariator.demo"
        minSdk = 29  // PowerManager.getCurrentThermalStatus and addThermalStatusListener
        targetSdk = 35
        versionCode = 1
        versionName = "0.1"
        ndk { abiFilters += listOf("arm64-v8a", "x86_64") }  // the ABIs the ExecuTorch AAR ships
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    // standins/ (signature stand-ins for policy/run_tests.sh's compile on Linux) is in no source set.

    // A bundle shipped in assets/bundle is copied to internal storage; .pte stays uncompressed in the APK.
    androidResources { noCompress.add("pte") }
}

kotlin {
    compilerOptions { jvmTarget.set(JvmTarget.JVM_17) }
}

dependencies {
    // The runtime: manifest, policy, tokenizer and the early-exit runner on ExecuTorch (it brings
    // org.pytorch:executorch-android and its native libraries with it).
    implementation(project(":policy"))
}
