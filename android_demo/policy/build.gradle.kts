import org.jetbrains.kotlin.gradle.dsl.JvmTarget

// The runtime an app embeds: an Android library (ai.edgevariator.policy) that an app adds with
// implementation(project(":policy")). src/main/kotlin is plain Kotlin with no android.* and no
// dependencies (manifest, policy, tokenizer, the early-exit runner over a Methods interface), so
// run_tests.sh compiles and tests it with kotlinc alone; src/executorch/kotlin holds the one file
// that needs the ExecuTorch AAR (ExecuTorchMethods: Module, EValue, Tensor).
plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

// The Android runtime of the executorch release the bundles are exported with (pyproject: executorch==1.4.0).
val executorchVersion = "1.4.0"

android {
    namespace = "ai.edgevariator.policy"
    compileSdk = 35

    defaultConfig {
        minSdk = 24  // executorch-android's own minSdk is 23
        buildConfigField("String", "EXECUTORCH_VERSION", "\"$executorchVersion\"")
    }

    buildFeatures { buildConfig = true }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    sourceSets {
        getByName("main") {
            java.srcDir("src/main/kotlin")
            java.srcDir("src/executorch/kotlin")
        }
        getByName("test") { java.srcDir("src/test/kotlin") }
    }
}

kotlin {
    compilerOptions { jvmTarget.set(JvmTarget.JVM_17) }
}

dependencies {
    // api: ExecuTorchMethods is public, and an app may pass it another Module.LOAD_MODE_*.
    api("org.pytorch:executorch-android:$executorchVersion")
    testImplementation(platform("org.junit:junit-bom:5.11.4"))
    testImplementation("org.junit.jupiter:junit-jupiter")
    testRuntimeOnly("org.junit.platform:junit-platform-launcher")
}

// ./gradlew :policy:testDebugUnitTest runs the same JUnit 5 tests as run_tests.sh, on the JVM.
tasks.withType<Test>().configureEach {
    useJUnitPlatform()
    // The vectors and the shipped bundle live in the Python repository around android_demo/.
    systemProperty("edgeVariator.root", rootDir.parentFile.absolutePath)
}
