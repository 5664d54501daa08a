// Stand-in for the BuildConfig that Gradle generates for :policy from policy/build.gradle.kts's
// buildConfigField (EXECUTORCH_VERSION); for the compile in policy/run_tests.sh only.
package ai.edgevariator.policy;

public final class BuildConfig {
    public static final String EXECUTORCH_VERSION = "stand-in";

    private BuildConfig() {}
}
