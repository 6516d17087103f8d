"""What measures the method: the offline data set (``data``), the pretrained backbone (``backbone``),
the training loop (``train``) and its command line (``finetune``), the operator benchmark (``bench``),
and what every result records about where it ran (``measure``, ``device``).
"""
