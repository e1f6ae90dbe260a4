package dev.portico.client;

import dev.portico.v1.Message;
import dev.portico.v1.Role;

/** Short ways to write the conversation's messages: {@code Messages.user("Hello")}. */
public final class Messages {
  private Messages() {}

  /** Instructions for the model. */
  public static Message system(String content) {
    return of(Role.ROLE_SYSTEM, content);
  }

  /** What the end user said. */
  public static Message user(String content) {
    return of(Role.ROLE_USER, content);
  }

  /** An earlier answer of the model. */
  public static Message assistant(String content) {
    return of(Role.ROLE_ASSISTANT, content);
  }

  /** The result of the tool call {@code toolCallId}, sent back to the model. */
  public static Message toolResult(String toolCallId, String content) {
    return of(Role.ROLE_TOOL, content).toBuilder().setToolCallId(toolCallId).build();
  }

  private static Message of(Role role, String content) {
    return Message.newBuilder().setRole(role).setContent(content).build();
  }
}
