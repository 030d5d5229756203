"""The layers: the recurrent families (LSTM, GRU, RNN) on their fast path, what they share (stacking,
directions, lengths, dropout), the compiled kernels, Linear, Embedding, the composite models and single-step streaming.
Nothing here imports training, checking, formats or the command line."""
