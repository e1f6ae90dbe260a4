package dev.portico.client;

import dev.portico.v1.ReasoningConfig;
import dev.portico.v1.ReasoningEffort;

/**
 * Reasoning controls for {@code ChatRequest.reasoning}. Each provider maps them to its own
 * knob (OpenAI {@code reasoning_effort}, Anthropic {@code thinking.budget_tokens}, Gemini
 * {@code thinkingConfig}, Ollama {@code think}); a model without one fails the call with
 * FAILED_PRECONDITION.
 */
public final class ReasoningControls {
  private ReasoningControls() {}

  /** An effort: {@code ReasoningEffort.REASONING_EFFORT_LOW}, {@code _MEDIUM} or {@code _HIGH}. */
  public static ReasoningConfig effort(ReasoningEffort effort) {
    return ReasoningConfig.newBuilder().setEffort(effort).build();
  }

  /** A token budget for reasoning; greater than 0. */
  public static ReasoningConfig budget(int budgetTokens) {
    return ReasoningConfig.newBuilder().setBudgetTokens(budgetTokens).build();
  }

  /** An effort and a token budget; providers that take a budget use the budget. */
  public static ReasoningConfig of(ReasoningEffort effort, int budgetTokens) {
    return ReasoningConfig.newBuilder().setEffort(effort).setBudgetTokens(budgetTokens).build();
  }
}
