"""Speech-text language models: prompt layout, the offline speech LM, speech filtering, tracing inputs, gap."""
