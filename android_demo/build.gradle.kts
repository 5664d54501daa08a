// The demo app (:app) and the runtime library it depends on (:policy, an Android library whose
// pure-Kotlin part is also built and tested without Gradle by policy/run_tests.sh).
plugins {
    id("com.android.application") version "8.9.1" apply false
    id("com.android.library") version "8.9.1" apply false
    id("org.jetbrains.kotlin.android") version "2.1.21" apply false
}
