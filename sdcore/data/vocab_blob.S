/* The CLIP BPE merges file (bpe_simple_vocab_16e6.txt, decompressed at build time), embedded
   as read-only data so the tokenizer needs no file at run time.  See LICENSE-CLIP beside it. */
        .section .rodata
        .global sd_vocab_blob
        .global sd_vocab_blob_end
        .balign 16
sd_vocab_blob:
        .incbin VOCAB_PATH
sd_vocab_blob_end:
        .byte 0
        .section .note.GNU-stack,"",@progbits
