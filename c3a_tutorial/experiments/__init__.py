"""What measures the method: the offline data set (``data``), the pretrained backbone (``backbone``),
one fine-tuning run (``config`` says what it is, ``train`` runs it, ``record`` reports it) and its
command line (``finetune``), the operator benchmark (``bench``), and what every result records about
where it ran (``measure``, ``device``).
"""
