package dev.portico.client;

import dev.portico.v1.StreamChunk;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Flow;

/**
 * A subscriber that asks for {@code batch} chunks at a time, as a slow consumer would, and
 * collects them; {@link #text()} completes with their content at the end, or fails as the
 * stream did.
 */
final class CollectingSubscriber implements Flow.Subscriber<StreamChunk> {
  private final int batch;
  private final List<StreamChunk> chunks = new ArrayList<>();
  private final CompletableFuture<String> text = new CompletableFuture<>();
  private Flow.Subscription subscription;
  private int leftInBatch;
  /** The most chunks that arrived beyond what was requested; must stay 0. */
  volatile int overDelivered;

  CollectingSubscriber(int batch) {
    this.batch = batch;
  }

  @Override
  public void onSubscribe(Flow.Subscription subscription) {
    this.subscription = subscription;
    leftInBatch = batch;
    subscription.request(batch);
  }

  @Override
  public void onNext(StreamChunk chunk) {
    chunks.add(chunk);
    if (--leftInBatch < 0) {
      overDelivered = Math.max(overDelivered, -leftInBatch);
    }
    if (leftInBatch == 0) {
      leftInBatch = batch;
      subscription.request(batch);
    }
  }

  @Override
  public void onError(Throwable error) {
    text.completeExceptionally(error);
  }

  @Override
  public void onComplete() {
    StringBuilder joined = new StringBuilder();
    chunks.forEach(chunk -> joined.append(chunk.getContent()));
    text.complete(joined.toString());
  }

  CompletableFuture<String> text() {
    return text;
  }

  List<StreamChunk> chunks() {
    return chunks;
  }
}
