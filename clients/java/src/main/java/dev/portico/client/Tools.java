package dev.portico.client;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import dev.portico.v1.ToolDefinition;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;
import java.lang.reflect.GenericArrayType;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.RecordComponent;
import java.lang.reflect.Type;
import java.lang.reflect.WildcardType;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.OptionalInt;
import java.util.OptionalLong;
import java.util.Set;

/**
 * Tool definitions whose parameter schema is built from a Java record or given as a map:
 *
 * <pre>{@code
 * record WeatherArgs(
 *     @Tools.Description("The city, e.g. Paris") String city,
 *     Optional<Units> units) {}
 * enum Units { celsius, fahrenheit }
 *
 * ToolDefinition tool = Tools.fromRecord("get_weather", "The weather in a city.", WeatherArgs.class);
 * }</pre>
 *
 * <p>A record becomes a JSON Schema object with one property per component, in declaration
 * order (models read them in that order), each required unless its type is an {@code Optional},
 * and {@code additionalProperties: false}. Component types map as: {@code String} and {@code
 * char} to string; {@code boolean} to boolean; the integral types and {@code BigInteger} to
 * integer; {@code float}, {@code double} and {@code BigDecimal} to number; an enum to a string
 * with its constants' names as {@code enum}; arrays and collections to array; a {@code
 * Map<String, V>} to an object of V values; a nested record to a nested object. Any other type
 * (or a record that contains itself) is refused with an {@link IllegalArgumentException} naming
 * the component, when the tool is built rather than when a model calls it.
 */
public final class Tools {
  private static final Gson JSON = new GsonBuilder().disableHtmlEscaping().create();

  private Tools() {}

  /** The description of a record component, sent to the model in the schema. */
  @Retention(RetentionPolicy.RUNTIME)
  @Target({ElementType.RECORD_COMPONENT, ElementType.FIELD, ElementType.PARAMETER})
  public @interface Description {
    /** What the value means, in words for the model. */
    String value();
  }

  /** A tool whose parameters are the schema of {@code arguments}, the record its arguments fill. */
  public static ToolDefinition fromRecord(String name, String description, Class<? extends Record> arguments) {
    return definition(name, description, schema(arguments));
  }

  /**
   * A tool whose parameters are {@code schema}, a JSON Schema object written as nested maps and
   * lists (a {@link LinkedHashMap} keeps the properties in order); sent as JSON.
   */
  public static ToolDefinition fromMap(String name, String description, Map<String, ?> schema) {
    Objects.requireNonNull(schema, "schema");
    return definition(name, description, JSON.toJson(schema));
  }

  /** The JSON Schema of the record type {@code arguments}, as JSON text. */
  public static String schema(Class<? extends Record> arguments) {
    Objects.requireNonNull(arguments, "arguments");
    return JSON.toJson(recordSchema(arguments, new HashSet<>(), arguments.getSimpleName()));
  }

  private static ToolDefinition definition(String name, String description, String schema) {
    Objects.requireNonNull(name, "name");
    return ToolDefinition.newBuilder()
        .setName(name)
        .setDescription(description == null ? "" : description)
        .setParametersJsonSchema(schema)
        .build();
  }

  private static Map<String, Object> recordSchema(Class<?> type, Set<Class<?>> enclosing, String path) {
    if (!enclosing.add(type)) {
      throw new IllegalArgumentException(path + ": the record " + type.getName()
          + " contains itself, which a JSON Schema without references cannot say");
    }
    Map<String, Object> properties = new LinkedHashMap<>();
    List<String> required = new ArrayList<>();
    for (RecordComponent component : type.getRecordComponents()) {
      String where = path + "." + component.getName();
      Type valueType = component.getGenericType();
      boolean optional = isOptional(valueType);
      Map<String, Object> property = valueSchema(optional ? optionalValue(valueType, where) : valueType, enclosing, where);
      Description description = component.getAnnotation(Description.class);
      if (description != null) {
        property.put("description", description.value());
      }
      properties.put(component.getName(), property);
      if (!optional) {
        required.add(component.getName());
      }
    }
    enclosing.remove(type);
    Map<String, Object> schema = new LinkedHashMap<>();
    schema.put("type", "object");
    schema.put("properties", properties);
    if (!required.isEmpty()) {
      schema.put("required", required);
    }
    schema.put("additionalProperties", false);
    return schema;
  }

  private static boolean isOptional(Type type) {
    Class<?> raw = raw(type);
    return raw == Optional.class || raw == OptionalInt.class || raw == OptionalLong.class
        || raw == OptionalDouble.class;
  }

  private static Type optionalValue(Type type, String where) {
    Class<?> raw = raw(type);
    if (raw == OptionalInt.class || raw == OptionalLong.class) {
      return long.class;
    }
    if (raw == OptionalDouble.class) {
      return double.class;
    }
    return typeArgument(type, 0, where);
  }

  private static Map<String, Object> valueSchema(Type type, Set<Class<?>> enclosing, String where) {
    Map<String, Object> schema = new LinkedHashMap<>();
    Class<?> raw = raw(type);
    if (raw == String.class || raw == char.class || raw == Character.class) {
      schema.put("type", "string");
    } else if (raw == boolean.class || raw == Boolean.class) {
      schema.put("type", "boolean");
    } else if (raw == int.class || raw == long.class || raw == short.class || raw == byte.class
        || raw == Integer.class || raw == Long.class || raw == Short.class || raw == Byte.class
        || raw == BigInteger.class) {
      schema.put("type", "integer");
    } else if (raw == double.class || raw == float.class || raw == Double.class || raw == Float.class
        || raw == BigDecimal.class) {
      schema.put("type", "number");
    } else if (raw.isEnum()) {
      schema.put("type", "string");
      schema.put("enum", Arrays.stream(raw.getEnumConstants()).map(c -> ((Enum<?>) c).name()).toList());
    } else if (raw.isRecord()) {
      return recordSchema(raw, enclosing, where);
    } else if (type instanceof GenericArrayType array) {
      schema.put("type", "array");
      schema.put("items", valueSchema(array.getGenericComponentType(), enclosing, where + "[]"));
    } else if (raw.isArray()) {
      schema.put("type", "array");
      schema.put("items", valueSchema(raw.getComponentType(), enclosing, where + "[]"));
    } else if (Collection.class.isAssignableFrom(raw)) {
      schema.put("type", "array");
      schema.put("items", valueSchema(typeArgument(type, 0, where), enclosing, where + "[]"));
    } else if (Map.class.isAssignableFrom(raw) && raw(typeArgument(type, 0, where)) == String.class) {
      schema.put("type", "object");
      schema.put("additionalProperties", valueSchema(typeArgument(type, 1, where), enclosing, where + "{}"));
    } else {
      throw new IllegalArgumentException(where + ": no JSON Schema for the type " + type.getTypeName()
          + " (use a string, number, boolean, enum, record, array, collection or Map<String, V>)");
    }
    return schema;
  }

  private static Type typeArgument(Type type, int index, String where) {
    if (type instanceof ParameterizedType parameterized) {
      Type argument = parameterized.getActualTypeArguments()[index];
      if (argument instanceof WildcardType wildcard) {
        return wildcard.getUpperBounds()[0];
      }
      return argument;
    }
    throw new IllegalArgumentException(where + ": " + type.getTypeName() + " needs its type arguments");
  }

  private static Class<?> raw(Type type) {
    if (type instanceof Class<?> c) {
      return c;
    }
    if (type instanceof ParameterizedType parameterized) {
      return (Class<?>) parameterized.getRawType();
    }
    if (type instanceof GenericArrayType) {
      return Object[].class;
    }
    return Object.class; // a type variable or wildcard: refused by valueSchema
  }
}
