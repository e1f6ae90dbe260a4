package dev.portico.client;

import dev.portico.v1.CacheBreakpoint;
import dev.portico.v1.ContentPart;
import dev.portico.v1.Message;
import dev.portico.v1.ToolDefinition;
import java.time.Duration;

/**
 * Prompt-cache breakpoints: the provider may cache the prompt up to and including a marked
 * message, part or tool (Anthropic {@code cache_control}; providers that cache on their own
 * ignore it). A {@code null} TTL means the provider's default; Anthropic takes 5 and 60
 * minutes.
 */
public final class CacheBreakpoints {
  private CacheBreakpoints() {}

  /** A breakpoint with the given lifetime, or the provider's default when {@code ttl} is null. */
  public static CacheBreakpoint of(Duration ttl) {
    CacheBreakpoint.Builder breakpoint = CacheBreakpoint.newBuilder();
    if (ttl != null) {
      breakpoint.setTtlSeconds(Math.toIntExact(ttl.toSeconds()));
    }
    return breakpoint.build();
  }

  /** The message, marked as a breakpoint. */
  public static Message cache(Message message, Duration ttl) {
    return message.toBuilder().setCache(of(ttl)).build();
  }

  /** The part, marked as a breakpoint. */
  public static ContentPart cache(ContentPart part, Duration ttl) {
    return part.toBuilder().setCache(of(ttl)).build();
  }

  /** The tool, marked as a breakpoint. */
  public static ToolDefinition cache(ToolDefinition tool, Duration ttl) {
    return tool.toBuilder().setCache(of(ttl)).build();
  }
}
