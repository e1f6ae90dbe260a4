package dev.portico.client;

import com.google.protobuf.ByteString;
import dev.portico.v1.ContentPart;
import dev.portico.v1.Media;
import dev.portico.v1.Message;
import dev.portico.v1.Role;
import java.util.List;

/** Short ways to write content parts: text, and documents or images, inline or by URI. */
public final class Parts {
  private Parts() {}

  /** A text part. */
  public static ContentPart text(String text) {
    return ContentPart.newBuilder().setText(text).build();
  }

  /**
   * A document (or image) with inline bytes. {@code mimeType} may be empty for PNG, JPEG, GIF,
   * WebP and PDF, which the gateway recognises.
   */
  public static ContentPart document(byte[] data, String mimeType) {
    Media media = Media.newBuilder().setData(ByteString.copyFrom(data)).setMimeType(mimeType).build();
    return ContentPart.newBuilder().setMedia(media).build();
  }

  /** A document (or image) the provider fetches: an http(s), gs:// or data: URI. */
  public static ContentPart documentUri(String uri, String mimeType) {
    Media media = Media.newBuilder().setUri(uri).setMimeType(mimeType).build();
    return ContentPart.newBuilder().setMedia(media).build();
  }

  /** A message from the end user made of parts. */
  public static Message user(ContentPart... parts) {
    return Message.newBuilder().setRole(Role.ROLE_USER).addAllParts(List.of(parts)).build();
  }
}
