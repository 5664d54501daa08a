// The app (:app) and the pure-Kotlin policy module it depends on (:policy, also built and tested
// without Gradle by policy/run_tests.sh).
plugins {
    id("com.android.application") version "8.9.1" apply false
    id("org.jetbrains.kotlin.android") version "2.1.21" apply false
    id("org.jetbrains.kotlin.jvm") version "2.1.21" apply false
}
