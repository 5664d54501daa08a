// Stand-in for the platform's android.annotation.NonNull (frameworks/base
// core/java/android/annotation/NonNull.java), which Kotlin reads as a non-null `T`; for the
// compile in policy/run_tests.sh only.
package android.annotation;

import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

@Retention(RetentionPolicy.CLASS)
@Target({ElementType.METHOD, ElementType.PARAMETER, ElementType.FIELD})
public @interface NonNull {}
