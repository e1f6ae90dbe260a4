package dev.portico.client;

import java.util.Objects;

/**
 * One invalid field of a rejected request, from the {@code google.rpc.BadRequest} detail.
 *
 * @param field the field's path in the request, for example {@code temperature} or
 *     {@code messages[0].role}
 * @param description what is wrong with it
 */
public record FieldViolation(String field, String description) {
  public FieldViolation {
    Objects.requireNonNull(field, "field");
    Objects.requireNonNull(description, "description");
  }
}
