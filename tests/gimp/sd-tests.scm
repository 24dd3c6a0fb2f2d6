; tests/gimp/sd-tests.scm - the GIMP batch tests of gimp-sd, one function per test, run by
; run-gimp-tests.sh as  -b '(begin (load config) (load sd-lib.scm) (load this) (sd-run ...))'.
; Tests that write PNG files leave the pixel checks to the shell script (ImageMagick).

; ---- registration ------------------------------------------------------------------------

(define sd-filter-procs
  ; name, leading args (run-mode image drawable | run-mode), filter-specific arg names
  '(("plug-in-sd-txt2img" 3 ("width" "height"))
    ("plug-in-sd-img2img" 3 ("strength" "mask-blur" "padding"))
    ("plug-in-sd-inpaint" 3 ("strength" "mask-blur" "padding" "masked-content" "whole-image"
                              "color-match"))
    ("plug-in-sd-outpaint" 3 ("mask-blur" "color-match" "extend-left" "extend-top"
                               "extend-right" "extend-bottom"))
    ("plug-in-sd-denoise" 3 ("strength" "tile"))
    ("plug-in-sd-txt2img-new-image" 1 ("width" "height"))))

(define sd-common-args
  '("prompt" "negative-prompt" "model" "seed" "steps" "cfg-scale" "sampler" "karras"
    "timestep-spacing" "clip-skip" "prediction" "resolution"))

(define (sd-arg-names proc n)
  (let loop ((i (- n 1)) (acc '()))
    (if (< i 0) acc
        (loop (- i 1) (cons (cadr (gimp-procedural-db-proc-arg proc i)) acc)))))

(define (test-pdb-doc)
  (for-each
    (lambda (entry)
      (let* ((proc (car entry)) (lead (cadr entry)) (own (caddr entry))
             (info (gimp-procedural-db-proc-info proc))
             (nargs (nth 6 info)) (nrets (nth 7 info))
             (names (sd-arg-names proc nargs)))
        (sd-assert (= nargs (+ lead (length sd-common-args) (length own))) proc ": " nargs " args")
        (sd-assert (equal? (car names) "run-mode") proc ": first arg " (car names))
        (if (= lead 3)
            (sd-assert (equal? (list (cadr names) (caddr names)) '("image" "drawable"))
                       proc ": image/drawable"))
        (for-each (lambda (a) (sd-assert (member a names) proc " lacks argument " a))
                  (append sd-common-args own))
        ; every filter argument documents its range (or values/length) and its default
        (let loop ((i lead))
          (if (< i nargs)
              (let* ((a (gimp-procedural-db-proc-arg proc i)) (desc (caddr a)))
                (sd-assert (sd-contains? desc "default") proc " " (cadr a) ": no default in: " desc)
                (sd-assert (or (sd-contains? desc "Range") (sd-contains? desc "Values:")
                               (sd-contains? desc "0 or 1") (sd-contains? desc "At most"))
                           proc " " (cadr a) ": no range in: " desc)
                (loop (+ i 1)))))
        ; returns: [new-image] new-layer seed
        (let ((rets (let loop ((i (- nrets 1)) (acc '()))
                      (if (< i 0) acc
                          (loop (- i 1) (cons (cadr (gimp-procedural-db-proc-val proc i)) acc))))))
          (sd-assert (equal? rets (if (= lead 3) '("new-layer" "seed")
                                      '("new-image" "new-layer" "seed")))
                     proc ": return values " rets))
        ; menu and blurb
        (sd-assert (> (string-length (car info)) 10) proc ": blurb")))
    sd-filter-procs)
  (sd-assert (= (car (gimp-procedural-db-proc-exists "plug-in-sd-resident-status")) 1)
             "resident status procedure"))

(define (test-resident-fresh)
  (let ((s (sd-status)))
    (sd-msg "SD-STATUS fresh " s)
    (sd-assert (= (nth 0 s) 0) "loads " (nth 0 s))
    (sd-assert (= (nth 2 s) 0) "loaded " (nth 2 s))))

; ---- failures leave the image as it was ---------------------------------------------------

; Run thunk expecting a failure whose message contains subs, and check the image is unchanged:
; still clean (no undo step), same layers, same size, same selection bounds; and the whole
; image (every layer's pixels, offsets, channels, selection, parasites) saved as XCF before and
; after as <test>--<what>-pre/post.xcf, for the shell to compare byte for byte (check_failed
; in bad-input.sh).  XCF saving is done by GIMP's core: no plug-in process, a few ms.
(define (sd-fails-cleanly what img thunk . subs)
  (let* ((n (sd-n-layers img))
         (w (car (gimp-image-width img))) (h (car (gimp-image-height img)))
         (sel (sd-sel-rect img))
         (save (lambda (tail)
                 (let ((f (sd-path sd-out (string-append sd-test-name "--" what tail))))
                   (gimp-xcf-save 0 img (sd-active img) f f)))))
    (gimp-image-clean-all img)
    (save "-pre.xcf")
    (apply sd-expect-error (cons what (cons thunk subs)))
    (sd-assert (= (car (gimp-image-is-dirty img)) 0) what ": the image was changed (dirty)")
    (save "-post.xcf")
    (sd-assert (= (sd-n-layers img) n) what ": layer count changed")
    (sd-assert (= (car (gimp-image-width img)) w) what ": width changed")
    (sd-assert (= (car (gimp-image-height img)) h) what ": height changed")
    (sd-assert (equal? (sd-sel-rect img) sel) what ": selection changed")))

(define (test-err-args)
  (let* ((img (sd-load "rgb.png")) (d (sd-active img)))
    (sd-fails-cleanly "steps" img
      (lambda () (sd-call "plug-in-sd-img2img" (list img d) '(("steps" . 5000))))
      "steps = 5000 is outside 0..1000")
    (sd-fails-cleanly "resolution" img
      (lambda () (sd-call "plug-in-sd-img2img" (list img d) '(("resolution" . 100))))
      "resolution = 100" "multiple of 8")
    (sd-fails-cleanly "sampler" img
      (lambda () (sd-call "plug-in-sd-txt2img" (list img d) '(("sampler" . 7))))
      "sampler = 7 is outside -1..4")
    (sd-fails-cleanly "strength" img
      (lambda () (sd-call "plug-in-sd-denoise" (list img d) '(("strength" . 1.5))))
      "strength = 1.5 is outside -1..1")
    (sd-fails-cleanly "karras" img
      (lambda () (sd-call "plug-in-sd-inpaint" (list img d) '(("karras" . 2))))
      "karras = 2: must be 0 or 1")
    (sd-fails-cleanly "model-dotdot" img
      (lambda () (sd-call "plug-in-sd-img2img" (list img d) '(("model" . "../x"))))
      "may not contain")
    (gimp-image-delete img)))

(define (test-err-interactive)
  ; gimp-console has no display: the dialog cannot open, and says what to do instead
  (let* ((img (sd-load "rgb.png")) (d (sd-active img)))
    (sd-fails-cleanly "interactive" img
      (lambda () (sd-call-mode RUN-INTERACTIVE "plug-in-sd-img2img" (list img d) '()))
      "dialog" "needs GIMP's user interface" "RUN-NONINTERACTIVE")
    (gimp-image-delete img)))

(define (test-err-no-model)
  (let* ((img (sd-load "rgb.png")) (d (sd-active img)))
    (sd-fails-cleanly "no-such-model" img
      (lambda () (sd-call "plug-in-sd-img2img" (list img d) '(("model" . "no-such-model"))))
      "\"no-such-model\" not found" "/sd-models" "/models")
    (sd-fails-cleanly "absolute" img
      (lambda () (sd-call "plug-in-sd-txt2img" (list img d)
                          (list (cons "model" (sd-path sd-work "nothing.safetensors")))))
      "nothing.safetensors does not exist")
    (gimp-image-delete img)))

(define (test-err-broken-model)
  (let* ((img (sd-load "rgb.png")) (d (sd-active img)))
    (sd-fails-cleanly "broken" img
      (lambda () (sd-call "plug-in-sd-img2img" (list img d) '(("model" . "broken"))))
      "could not be loaded: " "broken.safetensors" "not a safetensors file")
    (gimp-image-delete img)))

(define (test-err-taesd)
  (let* ((img (sd-load "rgb.png")) (d (sd-active img)))
    (sd-fails-cleanly "taesd" img
      (lambda () (sd-call "plug-in-sd-txt2img" (list img d)
                          (list (cons "model"
                                      (sd-path sd-data "taesd/taesd_decoder.safetensors")))))
      "TAESD" "not a Stable Diffusion checkpoint")
    (gimp-image-delete img)))

(define (test-err-indexed)
  (let* ((img (sd-load "indexed.png")) (d (sd-active img)))
    (sd-assert (= (car (gimp-image-base-type img)) INDEXED) "indexed.png is not indexed")
    (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 10 10 30 20)
    (sd-fails-cleanly "indexed" img
      (lambda () (sd-call "plug-in-sd-inpaint" (list img d) '()))
      "indexed images are not supported")
    (gimp-image-delete img)))

(define (test-err-no-selection)
  (let* ((img (sd-load "rgb.png")) (d (sd-active img)))
    (sd-fails-cleanly "no-selection" img
      (lambda () (sd-call "plug-in-sd-inpaint" (list img d) '()))
      "inpaint needs a selection")
    (gimp-image-delete img)))

(define (test-err-selection-elsewhere)
  (let* ((img (sd-load-with-patch)) (d (sd-active img)))
    (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 0 0 20 15)  ; left of the patch
    (sd-fails-cleanly "selection-elsewhere" img
      (lambda () (sd-call "plug-in-sd-img2img" (list img d) '()))
      "does not overlap the active layer")
    (gimp-image-delete img)))

(define (test-err-outpaint-nothing)
  (let* ((img (sd-load "rgb.png")) (d (sd-active img)))
    (sd-fails-cleanly "outpaint-nothing" img
      (lambda () (sd-call "plug-in-sd-outpaint" (list img d) '()))
      "nothing to outpaint")
    (gimp-image-delete img)))

(define (test-err-group)
  (let* ((img (sd-load "rgb.png"))
         (g (car (gimp-layer-group-new img))))
    (gimp-image-insert-layer img g 0 0)
    (sd-fails-cleanly "group" img
      (lambda () (sd-call "plug-in-sd-img2img" (list img g) '()))
      "layer group")
    (gimp-image-delete img)))

(define (test-err-inpaint-model)
  ; a 9-channel inpainting checkpoint cannot do txt2img: the engine says so
  (let* ((img (sd-load "rgb.png")) (d (sd-active img)))
    (sd-fails-cleanly "inpaint-model" img
      (lambda () (sd-call "plug-in-sd-txt2img" (list img d) '(("model" . "tiny-sd15-inpaint"))))
      "is an inpainting model" "txt2img")
    (gimp-image-delete img)))

(define (test-err-too-large)
  (let* ((img (sd-load "rgb.png")) (d (sd-active img)))
    (sd-fails-cleanly "too-large" img
      (lambda () (sd-call "plug-in-sd-txt2img" (list img d)
                          '(("width" . 8192) ("height" . 8192) ("resolution" . 1024))))
      "not enough memory" "SD_MEMORY_LIMIT_MB")
    (gimp-image-delete img)))

; ---- bad input (docs/bad-input.md, "GIMP side") ----------------------------------------------

(define (test-err-truncated-model)
  ; a download cut short, found by name in the model folder: inside the header, inside the data
  (let* ((img (sd-load "rgb.png")) (d (sd-active img)))
    (sd-fails-cleanly "cut-4k" img
      (lambda () (sd-call "plug-in-sd-img2img" (list img d) '(("model" . "cut-4k"))))
      "could not be loaded: " "cut-4k.safetensors" "runs past the end of the file" "truncated?")
    (sd-fails-cleanly "cut-4m" img
      (lambda () (sd-call "plug-in-sd-txt2img" (list img d) '(("model" . "cut-4m"))))
      "could not be loaded: " "cut-4m.safetensors" "past the data section" "truncated?")
    (gimp-image-delete img)))

(define (test-err-wrong-family)
  ; valid safetensors files that are not SD 1.x/2.x checkpoints
  (let* ((img (sd-load "rgb.png")) (d (sd-active img)))
    (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 10 10 30 20)
    (sd-fails-cleanly "sdxl" img
      (lambda () (sd-call "plug-in-sd-inpaint" (list img d) '(("model" . "sdxl"))))
      "could not be loaded: " "sdxl.safetensors" "SDXL")
    (sd-fails-cleanly "lora" img
      (lambda () (sd-call "plug-in-sd-img2img" (list img d) '(("model" . "lora"))))
      "could not be loaded: " "lora.safetensors" "LoRA")
    (gimp-image-delete img)))

; A one-pixel RGB image, its only layer filled with a colour.
(define (sd-new-1x1)
  (let* ((img (car (gimp-image-new 1 1 RGB)))
         (layer (car (gimp-layer-new img 1 1 RGB-IMAGE "px" 100 LAYER-MODE-NORMAL))))
    (gimp-image-insert-layer img layer 0 0)
    (gimp-context-push)
    (gimp-context-set-foreground '(40 160 90))
    (gimp-drawable-fill layer FILL-FOREGROUND)
    (gimp-context-pop)
    img))

(define (test-txt2img-1x1)
  (let ((img (sd-new-1x1)))
    (sd-filter-case "txt2img-1x1" "plug-in-sd-txt2img" img '(0 0 1 1) '())
    (gimp-image-delete img)))

(define (test-img2img-1x1)
  (let ((img (sd-new-1x1)))
    (sd-filter-case "img2img-1x1" "plug-in-sd-img2img" img '(0 0 1 1) '(("strength" . 1.0)))
    (gimp-image-delete img)))

(define (test-err-denoise-1x1)
  (let* ((img (sd-new-1x1)) (d (sd-active img)))
    (sd-fails-cleanly "denoise-1x1" img
      (lambda () (sd-call "plug-in-sd-denoise" (list img d) '()))
      "1x1" "3x3 at least")
    (gimp-image-delete img)))

; One selected pixel: the layer is that pixel, everything else unchanged.
(define (test-img2img-sel-1px)
  (let ((img (sd-load "rgb.png")))
    (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 40 30 1 1)
    (sd-filter-case "img2img-sel-1px" "plug-in-sd-img2img" img '(40 30 1 1)
                    '(("strength" . 1.0) ("mask-blur" . 0)))
    (gimp-image-delete img)))

(define (test-inpaint-sel-1px)
  (let ((img (sd-load "rgb.png")))
    (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 40 30 1 1)
    (sd-filter-case "inpaint-sel-1px" "plug-in-sd-inpaint" img '(40 30 1 1)
                    '(("strength" . 1.0) ("mask-blur" . 0) ("model" . "tiny-sd15-inpaint")))
    (gimp-image-delete img)))

; Select > All: the whole layer.
(define (test-img2img-sel-all)
  (let ((img (sd-load "rgb.png")))
    (gimp-selection-all img)
    (sd-filter-case "img2img-sel-all" "plug-in-sd-img2img" img '(0 0 96 80) '())
    (gimp-image-delete img)))

(define (test-inpaint-sel-all)
  (let ((img (sd-load "rgb.png")))
    (gimp-selection-all img)
    (sd-filter-case "inpaint-sel-all" "plug-in-sd-inpaint" img '(0 0 96 80)
                    '(("model" . "tiny-sd15-inpaint")))
    (gimp-image-delete img)))

(define (test-err-huge-layer)
  ; a 4096x4096 layer: img2img keeps five full-size float copies, over the 1000 MB the test
  ; run allows ($SD_MEMORY_LIMIT_MB): refused before any work, with the estimate
  (let* ((img (car (gimp-image-new 4096 4096 RGB)))
         (d (car (gimp-layer-new img 4096 4096 RGB-IMAGE "huge" 100 LAYER-MODE-NORMAL))))
    (gimp-image-insert-layer img d 0 0)
    (sd-fails-cleanly "huge-layer" img
      (lambda () (sd-call "plug-in-sd-img2img" (list img d) '()))
      "not enough memory: this img2img needs about " "the limit is 1000 MB"
      "$SD_MEMORY_LIMIT_MB")
    (gimp-image-delete img)))

(define (test-img2img-float-ellipse)
  ; 32-bit float, linear light: read and written through GEGL, the precision is kept
  (let ((img (sd-load "rgb.png")))
    (gimp-image-convert-precision img PRECISION-FLOAT-LINEAR)
    (gimp-image-select-ellipse img CHANNEL-OP-REPLACE 20 14 52 44)
    (gimp-selection-feather img 8)
    (sd-filter-case "img2img-float-ellipse" "plug-in-sd-img2img" img (sd-sel-rect img)
                    '(("strength" . 0.8)))
    (sd-assert (= (car (gimp-image-get-precision img)) PRECISION-FLOAT-LINEAR) "precision kept")
    (gimp-image-delete img)))

; ---- crashes: run-gimp-tests.sh runs these in a session of their own, with crash_watch
;      (bad-input.sh) killing the process named by the SD-CRASH-ARM line during the call -----

(define (sd-resident-pid)
  (if (= (car (gimp-procedural-db-proc-exists "plug-in-sd-resident-status")) 1)
      (nth 4 (sd-status))
      0))

; A long img2img on rgb.png (selection 20,10 40x30) during which `target` gets `signal`:
; the call must fail and leave the image as it was; then a normal call works on that image.
(define (sd-crash-case what target signal)
  (let* ((img (sd-load "rgb.png")) (d (sd-active img)) (pid (sd-resident-pid)))
    (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 20 10 40 30)
    (sd-fails-cleanly what img
      (lambda ()
        (sd-msg "SD-CRASH-ARM " sd-test-name " " target " " signal " " pid)
        (sd-call "plug-in-sd-img2img" (list img d) '(("steps" . 400) ("strength" . 1.0))))
      "plug-in-sd-img2img" "returned no return values")
    (sd-assert (= (sd-resident-pid) pid) what ": the resident process changed")
    (let ((layer (car (sd-call "plug-in-sd-img2img" (list img d) '()))))
      (sd-assert (= (sd-n-layers img) 2) what ": the next call made no layer")
      (sd-assert-rect what layer '(20 10 40 30)))
    (gimp-image-delete img)))

(define (test-err-crash-caller)
  ; the filter process crashes while the resident generates for it
  (sd-assert (> (sd-resident-pid) 0) "no resident process")
  (sd-crash-case "caller" "caller" "SEGV"))

(define (test-err-crash-caller-kill)
  ; killed, as GIMP's progress-bar Cancel does: the resident must stop and commit nothing
  (sd-crash-case "caller-kill" "caller" "KILL"))

(define (test-img2img-crash-resident)
  ; the resident crashes during the call: the filter runs it again in its own process
  (let ((img (sd-load "rgb.png")) (pid (sd-resident-pid)))
    (sd-assert (> pid 0) "no resident process")
    (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 20 10 40 30)
    (sd-msg "SD-CRASH-ARM " sd-test-name " resident SEGV " pid)
    (sd-filter-case "img2img-crash-resident" "plug-in-sd-img2img" img '(20 10 40 30)
                    '(("steps" . 400) ("strength" . 1.0)))
    (sd-assert (= (sd-resident-pid) 0) "the resident process is still there")
    (gimp-image-delete img)))

(define (test-err-crash-inprocess)
  ; no resident any more: the filter generates in its own process, and crashes there
  (sd-assert (= (sd-resident-pid) 0) "the resident process is still there")
  (sd-crash-case "inprocess" "caller" "SEGV"))

; ---- the filters on real images ------------------------------------------------------------

; Run a filter on img (active drawable), save the composite before/after and the layer, check
; the result layer: directly above the source, the expected rect, the name, the parasite, the
; seed.  Returns the new layer.
(define (sd-filter-case tag proc img want-rect overrides)
  (let* ((d (sd-active img))
         (n0 (sd-n-layers img))
         (pos0 (car (gimp-image-get-item-position img d))))
    (sd-save-composite img (string-append tag "-before.png"))
    (sd-save-change-mask img want-rect (string-append tag "-mask.png"))
    (let* ((r (sd-call proc (list img d) overrides))
           (layer (car r)) (seed (cadr r))
           (par (sd-parasite layer))
           (name (car (gimp-item-get-name layer))))
      (sd-msg "SD-RESULT " tag ": layer " layer " seed " seed " name \"" name "\"")
      (sd-assert (= (car (gimp-item-is-layer layer)) 1) tag ": not a layer")
      (sd-assert (= (sd-n-layers img) (+ n0 1)) tag ": layer count")
      (sd-assert (= (car (gimp-image-get-item-position img layer)) pos0)
                 tag ": not above the source")
      (sd-assert (= (car (gimp-image-get-item-position img d)) (+ pos0 1)) tag ": source moved")
      (sd-assert-rect tag layer want-rect)
      (sd-assert (sd-contains? name "SD ") tag ": layer name " name)
      (sd-assert (sd-contains? par (string-append "seed=" (number->string seed) "\n"))
                 tag ": parasite seed: " par)
      (sd-assert (sd-contains? par "model-file=/") tag ": parasite model: " par)
      (gimp-selection-none img)
      (sd-save-composite img (string-append tag "-after.png"))
      (sd-save-layer img layer (string-append tag "-layer.png"))
      layer)))

(define (test-txt2img-rgb-rect)
  (let ((img (sd-load "rgb.png")))
    (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 16 12 48 40)
    (let ((layer (sd-filter-case "txt2img-rgb-rect" "plug-in-sd-txt2img" img '(16 12 48 40)
                                 '(("seed" . 7)))))
      (sd-assert (equal? (car (gimp-item-get-name layer)) "SD txt2img: a red apple") "name")
      (sd-assert (sd-contains? (sd-parasite layer) "filter=txt2img\n") "parasite filter")
      (sd-assert (sd-contains? (sd-parasite layer) "prompt=a red apple\n") "parasite prompt"))
    (gimp-image-delete img)))

(define (test-txt2img-gray-size)
  ; width/height given: the layer has that size at the canvas origin (no selection); a prompt
  ; with UTF-8, quotes, a newline and a backslash survives the key=value text (resident call
  ; and parasite) and becomes a one-line layer name
  (let* ((img (sd-load "gray.png"))
         (prompt "café \"q\"\nline \\ end"))
    (let ((layer (sd-filter-case "txt2img-gray-size" "plug-in-sd-txt2img" img '(0 0 40 32)
                                 (list '("width" . 40) '("height" . 32)
                                       (cons "prompt" prompt)))))
      (sd-assert (= (car (gimp-drawable-is-gray layer)) 1) "gray layer")
      (sd-assert (equal? (car (gimp-item-get-name layer)) "SD txt2img: café \"q\" line \\ end")
                 "name " (car (gimp-item-get-name layer)))
      (sd-assert (sd-contains? (sd-parasite layer) "\nprompt=café \"q\"\\nline \\\\ end\n")
                 "parasite prompt: " (sd-parasite layer))
      (sd-assert (sd-contains? (sd-parasite layer) "\nwidth=40\nheight=32\n") "parasite size"))
    (gimp-image-delete img)))

(define (test-txt2img-rgb16-ellipse)
  ; a feathered ellipse: the layer covers its bounds, transparent outside it
  (let ((img (sd-load "rgb16.png")))
    (gimp-image-select-ellipse img CHANNEL-OP-REPLACE 14 10 60 50)
    (gimp-selection-feather img 8)
    (sd-filter-case "txt2img-rgb16-ellipse" "plug-in-sd-txt2img" img (sd-sel-rect img) '())
    (gimp-image-delete img)))

(define (test-img2img-gray-rect)
  (let ((img (sd-load "gray.png")))
    (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 24 20 48 36)
    (let ((layer (sd-filter-case "img2img-gray-rect" "plug-in-sd-img2img" img '(24 20 48 36)
                                 '(("strength" . 0.9)))))
      (sd-assert (= (car (gimp-drawable-is-gray layer)) 1) "gray layer")
      (sd-assert (sd-contains? (sd-parasite layer) "strength-used=0.9") "strength used: "
                 (sd-parasite layer)))
    (gimp-image-delete img)))

(define (test-img2img-rgba-ellipse)
  ; the active layer is a 56x48 RGBA patch at (30, 20); a feathered ellipse partly over it
  (let ((img (sd-load-with-patch)))
    (gimp-image-select-ellipse img CHANNEL-OP-REPLACE 20 14 52 44)
    (gimp-selection-feather img 8)
    (let ((want (sd-intersect (sd-sel-rect img) '(30 20 56 48))))
      (sd-filter-case "img2img-rgba-ellipse" "plug-in-sd-img2img" img want
                      '(("strength" . 0.8))))
    (gimp-image-delete img)))

(define (test-img2img-big-layer)
  ; a layer larger than the canvas, offset to (-12, -10), no selection: the whole layer
  (let* ((img (sd-load "rgb.png")) (d (sd-active img)))
    (gimp-layer-resize d 120 100 12 10)
    (gimp-layer-set-offsets d -12 -10)
    (sd-filter-case "img2img-big-layer" "plug-in-sd-img2img" img '(-12 -10 120 100)
                    '(("strength" . 0.6)))
    (gimp-image-delete img)))

(define (test-inpaint-gray-ellipse)
  (let ((img (sd-load "gray.png")))
    (gimp-image-select-ellipse img CHANNEL-OP-REPLACE 24 16 40 36)
    (gimp-selection-feather img 6)
    (let ((layer (sd-filter-case "inpaint-gray-ellipse" "plug-in-sd-inpaint" img
                                 (sd-sel-rect img) '(("model" . "tiny-sd15-inpaint")))))
      (sd-assert (= (car (gimp-drawable-is-gray layer)) 1) "gray layer")
      (sd-assert (sd-contains? (sd-parasite layer) "model=tiny-sd15-inpaint\n") "parasite model"))
    (gimp-image-delete img)))

(define (test-inpaint-rgb16-rect)
  ; a standard 4-channel checkpoint (the default model) on a 16-bit image
  (let ((img (sd-load "rgb16.png")))
    (sd-assert (= (car (gimp-image-get-precision img)) PRECISION-U16-GAMMA) "16-bit input")
    (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 30 20 36 28)
    (sd-filter-case "inpaint-rgb16-rect" "plug-in-sd-inpaint" img '(30 20 36 28) '())
    (sd-assert (= (car (gimp-image-get-precision img)) PRECISION-U16-GAMMA) "precision kept")
    (gimp-image-delete img)))

(define (test-inpaint-rgba-ellipse)
  ; the 9-channel model on the offset RGBA patch
  (let ((img (sd-load-with-patch)))
    (gimp-image-select-ellipse img CHANNEL-OP-REPLACE 40 28 30 26)
    (gimp-selection-feather img 6)
    (sd-filter-case "inpaint-rgba-ellipse" "plug-in-sd-inpaint" img
                    (sd-intersect (sd-sel-rect img) '(30 20 56 48))
                    '(("model" . "tiny-sd15-inpaint")))
    (gimp-image-delete img)))

(define (test-denoise-rgb-ellipse)
  (let ((img (sd-load "noisy.png")))
    (gimp-image-select-ellipse img CHANNEL-OP-REPLACE 16 12 64 52)
    (gimp-selection-feather img 10)
    (let ((layer (sd-filter-case "denoise-rgb-ellipse" "plug-in-sd-denoise" img
                                 (sd-sel-rect img) '(("prompt" . "")))))
      (sd-assert (equal? (car (gimp-item-get-name layer)) "SD denoise") "name")
      (sd-assert (sd-contains? (sd-parasite layer) "noise-sigma=") "parasite noise"))
    (gimp-image-delete img)))

(define (test-denoise-rgb16-rect)
  (let ((img (sd-load "rgb16.png")))
    (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 8 8 64 48)
    (sd-filter-case "denoise-rgb16-rect" "plug-in-sd-denoise" img '(8 8 64 48)
                    '(("strength" . 0.3)))
    (gimp-image-delete img)))

(define (test-outpaint-rgb16-grow)
  (let* ((img (sd-load "rgb16.png")) (d (sd-active img)))
    ; the selection is not used by outpaint: a rectangle must not matter
    (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 10 10 20 20)
    (sd-filter-case "outpaint-rgb16-grow" "plug-in-sd-outpaint" img '(0 0 136 88)
                    '(("extend-left" . 16) ("extend-top" . 8) ("extend-right" . 24)))
    (sd-assert (= (car (gimp-image-width img)) 136) "canvas width")
    (sd-assert (= (car (gimp-image-height img)) 88) "canvas height")
    (sd-assert-rect "source" d '(16 8 96 80))
    (sd-assert (= (car (gimp-image-get-precision img)) PRECISION-U16-GAMMA) "precision kept")
    (gimp-image-delete img)))

(define (test-outpaint-gray-right)
  (let* ((img (sd-load "gray.png")) (d (sd-active img)))
    (let ((layer (sd-filter-case "outpaint-gray-right" "plug-in-sd-outpaint" img '(0 0 136 80)
                                 '(("extend-right" . 40)))))
      (sd-assert (= (car (gimp-drawable-is-gray layer)) 1) "gray layer"))
    (sd-assert-rect "source" d '(0 0 96 80))
    (gimp-image-delete img)))

(define (test-outpaint-uncovered)
  ; all extends 0: fill what the offset patch leaves of the canvas, no resize
  (let* ((img (sd-load-with-patch)))
    (gimp-image-select-ellipse img CHANNEL-OP-REPLACE 20 14 52 44)
    (sd-filter-case "outpaint-uncovered" "plug-in-sd-outpaint" img '(0 0 96 80)
                    '(("model" . "tiny-sd15-inpaint")))
    (sd-assert (= (car (gimp-image-width img)) 96) "canvas width")
    (gimp-image-delete img)))

(define (test-model-folder)
  ; a diffusers folder found by its name on $SD_MODEL_PATH
  (let ((img (sd-load "rgb.png")))
    (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 20 10 40 30)
    (let ((layer (sd-filter-case "model-folder" "plug-in-sd-img2img" img '(20 10 40 30)
                                 '(("model" . "tiny-sd15-diffusers")))))
      (sd-assert (sd-contains? (sd-parasite layer) "/diffusers\n")
                 "model file: " (sd-parasite layer)))
    (gimp-image-delete img)))

(define (test-txt2img-new-image)
  (let* ((r (sd-call "plug-in-sd-txt2img-new-image" '()
                     '(("width" . 64) ("height" . 48) ("seed" . 5))))
         (img (car r)) (layer (cadr r)))
    (sd-assert (= (car (gimp-image-width img)) 64) "width")
    (sd-assert (= (car (gimp-image-height img)) 48) "height")
    (sd-assert (= (car (gimp-image-base-type img)) RGB) "RGB")
    (sd-assert (= (sd-n-layers img) 1) "one layer")
    (sd-assert (= (caddr r) 5) "seed")
    (sd-assert (sd-contains? (sd-parasite layer) "seed=5\n") "parasite")
    (sd-save-layer img layer "new-image.png")
    (gimp-image-delete img)))

; ---- seeds, last values, the resident process -----------------------------------------------

(define (sd-img2img-layer img seed tag)
  (let* ((d (sd-active img))
         (r (sd-call "plug-in-sd-img2img" (list img d) (list (cons "seed" seed))))
         (layer (car r)))
    (sd-save-layer img layer (string-append tag ".png"))
    (gimp-image-remove-layer img layer)
    (cadr r)))

(define (test-seeds)
  ; same seed twice -> identical layers; another seed -> a different layer (shell compares);
  ; seed -1 -> a random seed in range, returned and recorded
  (let ((img (sd-load "rgb16.png")))
    (gimp-image-select-ellipse img CHANNEL-OP-REPLACE 20 14 52 44)
    (gimp-selection-feather img 4)
    (sd-img2img-layer img 1234 "seed-a")
    (sd-img2img-layer img 1234 "seed-b")
    (sd-img2img-layer img 99 "seed-c")
    (let* ((d (sd-active img))
           (r (sd-call "plug-in-sd-img2img" (list img d) '(("seed" . -1))))
           (seed (cadr r)))
      (sd-msg "SD-RESULT random seed " seed)
      (sd-assert (and (>= seed 0) (<= seed 2147483647)) "random seed range " seed)
      (sd-assert (sd-contains? (sd-parasite (car r))
                               (string-append "seed=" (number->string seed) "\n"))
                 "random seed recorded"))
    (gimp-image-delete img)))

(define (test-last-vals)
  ; RUN-WITH-LAST-VALS repeats the previous non-interactive call (explicit seed): same pixels
  (let* ((img (sd-load "rgb.png")) (d (sd-active img)))
    (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 20 10 40 30)
    (let* ((r1 (sd-call "plug-in-sd-img2img" (list img d) '(("seed" . 77) ("strength" . 0.7))))
           (r2 (plug-in-sd-img2img RUN-WITH-LAST-VALS img d "" "" "" 0 0 0 0 0 0 0 0 0 0 0 0)))
      (sd-assert (= (cadr r2) 77) "seed of the repeat " (cadr r2))
      (sd-save-layer img (car r1) "lastvals-a.png")
      (sd-save-layer img (car r2) "lastvals-b.png"))
    (gimp-image-delete img)))

(define (test-resident-reuse)
  ; two calls with one model: loaded once; another model: loaded again; same process
  (plug-in-sd-resident-release RUN-NONINTERACTIVE)
  (let* ((s0 (sd-status))
         (img (sd-load "rgb.png")) (d (sd-active img))
         (r1 (sd-call "plug-in-sd-img2img" (list img d) '()))
         (s1 (sd-status))
         (r2 (sd-call "plug-in-sd-txt2img" (list img d) '()))
         (s2 (sd-status)))
    (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 20 10 40 30)
    (let* ((r3 (sd-call "plug-in-sd-inpaint" (list img d) '(("model" . "tiny-sd15-inpaint"))))
           (s3 (sd-status)))
      (sd-msg "SD-STATUS " s0 " | " s1 " | " s2 " | " s3)
      (sd-assert (= (nth 2 s0) 0) "released")
      (sd-assert (= (nth 0 s1) (+ (nth 0 s0) 1)) "first call loads")
      (sd-assert (= (nth 0 s2) (nth 0 s1)) "second call did not load again")
      (sd-assert (= (nth 1 s2) (+ (nth 1 s0) 2)) "two calls served")
      (sd-assert (= (nth 0 s3) (+ (nth 0 s1) 1)) "another model loads")
      (sd-assert (sd-contains? (nth 3 s3) "tiny-sd15-inpaint") "loaded model " (nth 3 s3))
      (sd-assert (= (nth 4 s0) (nth 4 s3)) "same resident process"))
    (gimp-image-delete img)))

; ---- without the resident process ----------------------------------------------------------

(define (test-inprocess)
  ; SD_RESIDENT=0: no temporary procedures, the filter runs in its own process
  (sd-assert (= (car (gimp-procedural-db-proc-exists "plug-in-sd-resident-run")) 0)
             "the resident serves although SD_RESIDENT=0")
  (let ((img (sd-load "rgb.png")))
    (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 16 12 48 40)
    (sd-filter-case "inprocess" "plug-in-sd-txt2img" img '(16 12 48 40)
                    (list (cons "model" sd-model-abs) '("seed" . 7)))
    (gimp-image-delete img)))

(define (test-err-no-models-at-all)
  (let* ((img (sd-load "rgb.png")) (d (sd-active img)))
    (sd-fails-cleanly "no-models" img
      (lambda () (sd-call "plug-in-sd-img2img" (list img d) '(("model" . ""))))
      "no Stable Diffusion model found" "/sd-models")
    (gimp-image-delete img)))

(define (test-idle-release)
  ; SD_RESIDENT_IDLE=3: the model is freed soon after a call (3 s: on a loaded machine the
  ; status call after the filter call can come later than a shorter idle time)
  (let* ((img (sd-load "rgb.png")) (d (sd-active img)))
    (sd-call "plug-in-sd-img2img" (list img d) '())
    (sd-assert (= (nth 2 (sd-status)) 1) "loaded after the call")
    (let loop ((i 0))
      (if (= (nth 2 (sd-status)) 1)
          (begin (sd-assert (< i 5000000) "model still loaded after many status calls")
                 (loop (+ i 1)))
          (sd-msg "SD-RESULT released after " i " status calls")))
    (gimp-image-delete img)))

(define (test-stop-fallback)
  ; stop the resident: the next call runs in the filter's own process and still works
  (plug-in-sd-resident-stop RUN-NONINTERACTIVE)
  (let loop ((i 0))
    (if (= (car (gimp-procedural-db-proc-exists "plug-in-sd-resident-run")) 1)
        (begin (sd-assert (< i 100000) "resident still there") (loop (+ i 1)))))
  (let* ((img (sd-load "rgb.png")) (d (sd-active img)))
    (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 16 12 48 40)
    (sd-filter-case "stop-fallback" "plug-in-sd-txt2img" img '(16 12 48 40) '(("seed" . 7)))
    (gimp-image-delete img)))

; ---- undo in the GUI (run-gimp-tests.sh drives these through the Script-Fu server and
;      presses Ctrl+Z in the image window with xdotool: the PDB has no undo procedure) --------

(define sd-undo-img -1)
(define sd-undo-before '())

(define (sd-undo-state img)
  (let ((bottom (vector-ref (cadr (gimp-image-get-layers img)) (- (sd-n-layers img) 1))))
    (list (sd-n-layers img) (car (gimp-image-width img)) (car (gimp-image-height img))
          (sd-layer-rect bottom) (sd-sel-rect img))))

(define (sd-undo-prepare)
  (let ((img (sd-load "rgb.png")))
    (gimp-image-select-ellipse img CHANNEL-OP-REPLACE 20 14 52 44)
    (gimp-selection-feather img 6)
    (gimp-display-new img)
    (gimp-displays-flush)
    (set! sd-undo-img img)
    (number->string img)))

; Run a filter on the prepared image and save the composite before it.  These return text
; for the shell (the Script-Fu server does not stop at a failed assertion): "SD-UNDO-OK ..."
; or "SD-UNDO-FAIL message".
(define (sd-undo-reply thunk)
  (let ((r (sd-try thunk)))
    (if (eq? (car r) 'ok)
        (string-append "SD-UNDO-OK " (sd->string (cdr r)))
        (string-append "SD-UNDO-FAIL " (sd->string (cdr r))))))

(define (sd-undo-run tag proc overrides)
  (sd-undo-reply
    (lambda ()
      (let ((img sd-undo-img))
        (set! sd-undo-before (sd-undo-state img))
        (sd-save-composite img (string-append tag "-before.png"))
        (sd-call proc (list img (sd-active img)) overrides)
        (gimp-displays-flush)
        (sd-assert (not (equal? (sd-undo-state img) sd-undo-before))
                   tag ": the filter changed nothing")
        (sd-undo-state img)))))

; After one Ctrl+Z: everything as before (the shell compares the composites).
(define (sd-undo-check tag)
  (sd-undo-reply
    (lambda ()
      (let ((img sd-undo-img))
        (sd-assert (equal? (sd-undo-state img) sd-undo-before)
                   tag ": after one undo " (sd-undo-state img) " instead of " sd-undo-before)
        (sd-save-composite img (string-append tag "-undone.png"))
        "undone"))))

; ---- the dialogs in the GUI (run-gimp-tests.sh opens each one with a keyboard shortcut in the
;      image window, as a user would, and drives it with xdotool; these prepare the images and
;      check them through the Script-Fu server, which stays free while a dialog is open) -------

(define sd-ui-img -1)
(define sd-ui-display -1)
(define sd-ui-after '())

(define (sd-ui-state img)
  (list (sd-n-layers img) (car (gimp-image-width img)) (car (gimp-image-height img))))

; A copy of the test image named ui-<filter>.png (the window title tells the images apart),
; with the selection the filter wants, in a display.
(define (sd-ui-prepare filter)
  (let* ((f (sd-path sd-work (string-append "ui-" filter ".png")))
         (img (car (gimp-file-load RUN-NONINTERACTIVE f f))))
    (cond ((equal? filter "txt2img")
           (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 16 12 48 40))
          ((equal? filter "img2img")
           (gimp-image-select-rectangle img CHANNEL-OP-REPLACE 20 10 50 40))
          ((equal? filter "inpaint")
           (gimp-image-select-ellipse img CHANNEL-OP-REPLACE 20 14 52 44)
           (gimp-selection-feather img 6)))
    (set! sd-ui-display (car (gimp-display-new img)))
    (gimp-displays-flush)
    (set! sd-ui-img img)
    (sd-save-composite img (string-append "ui-" filter "-before.png"))
    (number->string img)))

(define (sd-ui-reply thunk)
  (let ((r (sd-try thunk)))
    (if (eq? (car r) 'ok)
        (string-append "SD-UI-OK " (sd->string (cdr r)))
        (string-append "SD-UI-FAIL " (sd->string (cdr r))))))

; After the first generation: one new layer on top, whose parasite records what was typed
; into the dialog (each of `want`, "key=value" lines) and the canvas grown by `grow` px.
(define (sd-ui-check-run filter grow want)
  (sd-ui-reply
    (lambda ()
      (let* ((img sd-ui-img) (state (sd-ui-state img))
             (top (vector-ref (cadr (gimp-image-get-layers img)) 0))
             (par (sd-parasite top)))
        (sd-assert (= (car state) 2) filter ": " (car state) " layers instead of 2")
        (sd-assert (= (cadr state) (+ 96 grow)) filter ": canvas width " (cadr state))
        (for-each (lambda (w) (sd-assert (sd-contains? par (string-append w "\n"))
                                         filter ": the parameters lack " w ": " par))
                  want)
        (set! sd-ui-after state)
        (sd-save-composite img (string-append "ui-" filter "-first.png"))
        state))))

; After a cancelled generation (and again after the dialog closed): nothing changed.
(define (sd-ui-check-unchanged filter tag)
  (sd-ui-reply
    (lambda ()
      (let ((state (sd-ui-state sd-ui-img)))
        (sd-assert (equal? state sd-ui-after)
                   filter " " tag ": " state " instead of " sd-ui-after)
        (sd-save-composite sd-ui-img (string-append "ui-" filter "-" tag ".png"))
        state))))

; Before and after a cancelled Filters > Repeat (gui-tests.sh, progress-cancel): the image made
; clean and saved as XCF, then checked still clean, with the same layers and size, and saved
; again (<test>--<tag>-pre/post.xcf, compared byte for byte by check_failed in bad-input.sh).
(define (sd-ui-xcf tag tail)
  (let ((f (sd-path sd-out (string-append tag tail))))
    (gimp-xcf-save 0 sd-ui-img (sd-active sd-ui-img) f f)))

(define (sd-ui-mark-clean tag)
  (sd-ui-reply
    (lambda ()
      (gimp-image-clean-all sd-ui-img)
      (set! sd-ui-after (sd-ui-state sd-ui-img))
      (sd-ui-xcf tag "-pre.xcf")
      sd-ui-after)))

(define (sd-ui-check-clean tag)
  (sd-ui-reply
    (lambda ()
      (sd-assert (= (car (gimp-image-is-dirty sd-ui-img)) 0) tag ": the image was changed (dirty)")
      (sd-ui-xcf tag "-post.xcf")
      (sd-assert (equal? (sd-ui-state sd-ui-img) sd-ui-after)
                 tag ": " (sd-ui-state sd-ui-img) " instead of " sd-ui-after)
      "clean")))

(define (sd-ui-close)
  (gimp-display-delete sd-ui-display)
  "closed")
