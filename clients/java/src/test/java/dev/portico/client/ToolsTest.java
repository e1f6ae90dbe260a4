package dev.portico.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.portico.v1.ToolDefinition;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
import org.junit.jupiter.api.Test;

class ToolsTest {
  enum Units { celsius, fahrenheit }

  record Place(String country, Optional<String> region) {}

  record Forecast(
      @Tools.Description("The city, e.g. Paris") String city,
      Optional<Units> units,
      OptionalInt days,
      List<Place> alternatives,
      Map<String, Double> thresholds,
      boolean hourly) {}

  record Node(String name, List<Node> children) {}

  record Opaque(Object anything) {}

  @Test
  void aRecordBecomesAnObjectSchemaInComponentOrder() {
    ToolDefinition tool = Tools.fromRecord("forecast", "The weather ahead.", Forecast.class);
    assertEquals("forecast", tool.getName());
    assertEquals("The weather ahead.", tool.getDescription());
    assertEquals("{\"type\":\"object\",\"properties\":{"
        + "\"city\":{\"type\":\"string\",\"description\":\"The city, e.g. Paris\"},"
        + "\"units\":{\"type\":\"string\",\"enum\":[\"celsius\",\"fahrenheit\"]},"
        + "\"days\":{\"type\":\"integer\"},"
        + "\"alternatives\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{"
        + "\"country\":{\"type\":\"string\"},\"region\":{\"type\":\"string\"}},"
        + "\"required\":[\"country\"],\"additionalProperties\":false}},"
        + "\"thresholds\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"number\"}},"
        + "\"hourly\":{\"type\":\"boolean\"}},"
        + "\"required\":[\"city\",\"alternatives\",\"thresholds\",\"hourly\"],"
        + "\"additionalProperties\":false}",
        tool.getParametersJsonSchema());
  }

  @Test
  void aTypeWithoutASchemaIsRefusedNamingTheComponent() {
    IllegalArgumentException opaque =
        assertThrows(IllegalArgumentException.class, () -> Tools.schema(Opaque.class));
    assertTrue(opaque.getMessage().startsWith("Opaque.anything: no JSON Schema for the type java.lang.Object"),
        opaque.getMessage());
    IllegalArgumentException cycle = assertThrows(IllegalArgumentException.class, () -> Tools.schema(Node.class));
    assertTrue(cycle.getMessage().contains("contains itself"), cycle.getMessage());
  }

  @Test
  void aMapIsSentAsJsonInItsOwnOrder() {
    Map<String, Object> properties = new LinkedHashMap<>();
    properties.put("zeta", Map.of("type", "string"));
    properties.put("alpha", Map.of("type", "number"));
    Map<String, Object> schema = new LinkedHashMap<>();
    schema.put("type", "object");
    schema.put("properties", properties);
    schema.put("required", List.of("zeta"));
    assertEquals(
        "{\"type\":\"object\",\"properties\":{\"zeta\":{\"type\":\"string\"},\"alpha\":{\"type\":\"number\"}},"
            + "\"required\":[\"zeta\"]}",
        Tools.fromMap("t", "d", schema).getParametersJsonSchema());
  }
}
