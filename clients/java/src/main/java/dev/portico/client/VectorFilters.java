package dev.portico.client;

import dev.portico.v1.FieldEquals;
import dev.portico.v1.FieldIn;
import dev.portico.v1.FieldRange;
import dev.portico.v1.Filter;
import dev.portico.v1.FilterList;
import dev.portico.v1.FilterValue;
import java.util.Arrays;
import java.util.function.UnaryOperator;

/**
 * Metadata filters for {@link Vectors}. Fields are metadata keys; a dotted path such as
 * {@code author.name} reaches into nested objects.
 *
 * <pre>{@code
 * Filter recentEnglish = VectorFilters.all(
 *     VectorFilters.eq("lang", "en"), VectorFilters.range("year", b -> b.setGte(2020)));
 * }</pre>
 */
public final class VectorFilters {
  private VectorFilters() {}

  /** {@code field == value}: a String, a Number or a Boolean (numbers compare as numbers). */
  public static Filter eq(String field, Object value) {
    return Filter.newBuilder()
        .setEquals(FieldEquals.newBuilder().setField(field).setValue(value(value)))
        .build();
  }

  /** {@code field} equals one of {@code values}. */
  public static Filter in(String field, Object... values) {
    FieldIn.Builder in = FieldIn.newBuilder().setField(field);
    Arrays.stream(values).map(VectorFilters::value).forEach(in::addValues);
    return Filter.newBuilder().setIn(in).build();
  }

  /** {@code field} is a number within the bounds {@code bounds} sets, e.g. {@code b -> b.setLt(2020)}. */
  public static Filter range(String field, UnaryOperator<FieldRange.Builder> bounds) {
    return Filter.newBuilder().setRange(bounds.apply(FieldRange.newBuilder().setField(field))).build();
  }

  /** Every filter matches. */
  public static Filter all(Filter... filters) {
    return Filter.newBuilder().setAll(FilterList.newBuilder().addAllFilters(Arrays.asList(filters))).build();
  }

  /** At least one filter matches. */
  public static Filter any(Filter... filters) {
    return Filter.newBuilder().setAny(FilterList.newBuilder().addAllFilters(Arrays.asList(filters))).build();
  }

  /** The filter does not match. */
  public static Filter not(Filter filter) {
    return Filter.newBuilder().setNegate(filter).build();
  }

  private static FilterValue value(Object value) {
    if (value instanceof String text) {
      return FilterValue.newBuilder().setStringValue(text).build();
    }
    if (value instanceof Boolean flag) {
      return FilterValue.newBuilder().setBoolValue(flag).build();
    }
    if (value instanceof Number number) {
      return FilterValue.newBuilder().setNumberValue(number.doubleValue()).build();
    }
    throw new IllegalArgumentException(
        "a filter value is a String, a Number or a Boolean, not " + (value == null ? "null" : value.getClass()));
  }
}
