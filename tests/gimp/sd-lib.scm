; tests/gimp/sd-lib.scm - helpers for the GIMP batch tests of gimp-sd (Script-Fu, TinyScheme).
; Loaded by every -b command after the generated config (sd-in, sd-out, sd-data, sd-work).
;
; A test is a thunk run by (sd-run name thunk): it prints "SD-TEST-PASS name" when the thunk
; returns, "SD-TEST-FAIL name: message" when it raises an error (an assertion or an
; unexpected PDB failure).  run-gimp-tests.sh reads these markers, then does the pixel checks
; on the PNG files the tests write into sd-out.  gimp-message lines appear on stderr as
; "script-fu-Warning: ...".

(define (sd-msg . items)
  (gimp-message (apply string-append (map sd->string items))))

(define (sd->string x)
  (cond ((string? x) x)
        ((number? x) (number->string x))
        ((symbol? x) (symbol->string x))
        ((null? x) "")
        ((pair? x) (string-append (sd->string (car x)) " " (sd->string (cdr x))))
        (else "?")))

; Run thunk; return (ok . value) or (error message irritants...).  Errors raised inside are
; caught through *error-hook*, which also receives PDB failures with their message.
(define (sd-try thunk)
  (call-with-current-continuation
    (lambda (k)
      (let ((old *error-hook*))
        (set! *error-hook*
              (lambda args (set! *error-hook* old) (k (cons 'error args))))
        (let ((r (thunk)))
          (set! *error-hook* old)
          (cons 'ok r))))))

; The name of the test being run (file names of its pictures).
(define sd-test-name "")

(define (sd-run name thunk)
  (set! sd-test-name name)
  (let ((r (sd-try thunk)))
    (if (eq? (car r) 'ok)
        (sd-msg "SD-TEST-PASS " name)
        (sd-msg "SD-TEST-FAIL " name ": " (sd->string (cdr r))))))

;; Scheme's (error ...) does not go through *error-hook* in Script-Fu's TinyScheme (only
;; failing primitives and PDB calls do), so assertions call the current hook themselves.
(define (sd-assert ok . what)
  (if (not ok)
      (*error-hook* (apply string-append "assertion failed: " (map sd->string what)))))

(define (sd-contains? s sub)
  (let ((n (string-length s)) (m (string-length sub)))
    (let loop ((i 0))
      (cond ((> (+ i m) n) #f)
            ((string=? (substring s i (+ i m)) sub) #t)
            (else (loop (+ i 1)))))))

; Expect thunk to fail with a message containing every string of `subs`.
(define (sd-expect-error what thunk . subs)
  (let ((r (sd-try thunk)))
    (sd-assert (eq? (car r) 'error) what ": the call did not fail")
    (let ((msg (sd->string (cadr r))))
      (sd-msg "SD-ERROR " what ": " msg)
      (for-each (lambda (s) (sd-assert (sd-contains? msg s) what ": message lacks \"" s "\": " msg))
                subs))))

; ---- images -----------------------------------------------------------------------------

(define (sd-path dir name) (string-append dir "/" name))

(define (sd-load name)
  (let ((f (sd-path sd-in name)))
    (car (gimp-file-load RUN-NONINTERACTIVE f f))))

(define (sd-active img) (car (gimp-image-get-active-drawable img)))
(define (sd-n-layers img) (car (gimp-image-get-layers img)))
(define (sd-width d) (car (gimp-drawable-width d)))
(define (sd-height d) (car (gimp-drawable-height d)))
(define (sd-offsets d) (gimp-drawable-offsets d))

; The RGB picture with a smaller RGBA layer `patch.png` at (30, 20) above it, active.
(define (sd-load-with-patch)
  (let* ((img (sd-load "rgb.png"))
         (f (sd-path sd-in "patch.png"))
         (patch (car (gimp-file-load-layer RUN-NONINTERACTIVE img f))))
    (gimp-image-insert-layer img patch 0 0)
    (gimp-layer-set-offsets patch 30 20)
    (gimp-image-set-active-layer img patch)
    img))

; The composite flattened (on a duplicate) and saved as PNG.
(define (sd-save-composite img name)
  (let* ((dup (car (gimp-image-duplicate img)))
         (flat (car (gimp-image-flatten dup)))
         (f (sd-path sd-out name)))
    (gimp-file-save RUN-NONINTERACTIVE dup flat f f)
    (gimp-image-delete dup)))

; Where a filter may change the composite: the selection (soft, as GIMP fills through it)
; within rect (x y w h), rendered white on black over the canvas and saved as PNG.  Without a
; selection, all of rect.  Linear images are rendered in non-linear (gamma) float, as the
; other precisions, which the shell's alpha check expects.
(define (sd-save-change-mask img rect name)
  (let* ((dup (car (gimp-image-duplicate img)))
         (linear (= (modulo (car (gimp-image-get-precision dup)) 100) 0))
         (gamma (if linear (gimp-image-convert-precision dup PRECISION-FLOAT-GAMMA)))
         (w (car (gimp-image-width dup))) (h (car (gimp-image-height dup)))
         (type (if (= (car (gimp-image-base-type dup)) GRAY) GRAY-IMAGE RGB-IMAGE))
         (m (car (gimp-layer-new dup w h type "mask" 100 LAYER-MODE-NORMAL)))
         (f (sd-path sd-out name)))
    (gimp-image-insert-layer dup m 0 0)
    (gimp-context-push)
    (gimp-context-set-foreground '(0 0 0))
    (gimp-drawable-fill m FILL-FOREGROUND)                ; ignores the selection
    (gimp-image-select-rectangle dup
      (if (= (car (gimp-selection-is-empty dup)) 1) CHANNEL-OP-REPLACE CHANNEL-OP-INTERSECT)
      (car rect) (cadr rect) (caddr rect) (cadddr rect))
    (gimp-context-set-foreground '(255 255 255))
    (gimp-edit-fill m FILL-FOREGROUND)                    ; through the selection
    (gimp-context-pop)
    (gimp-file-save RUN-NONINTERACTIVE dup m f f)
    (gimp-image-delete dup)))

; One layer saved alone (its own size) as PNG.
(define (sd-save-layer img layer name)
  (let ((f (sd-path sd-out name)))
    (gimp-file-save RUN-NONINTERACTIVE img layer f f)))

; Selection bounds as (x y w h), or #f when empty.
(define (sd-sel-rect img)
  (let ((b (gimp-selection-bounds img)))
    (if (= (car b) 0) #f
        (list (nth 1 b) (nth 2 b) (- (nth 3 b) (nth 1 b)) (- (nth 4 b) (nth 2 b))))))

(define (sd-intersect a b)
  (let* ((x0 (max (car a) (car b))) (y0 (max (cadr a) (cadr b)))
         (x1 (min (+ (car a) (caddr a)) (+ (car b) (caddr b))))
         (y1 (min (+ (cadr a) (cadddr a)) (+ (cadr b) (cadddr b)))))
    (list x0 y0 (- x1 x0) (- y1 y0))))

(define (sd-layer-rect d)
  (let ((o (sd-offsets d)))
    (list (car o) (cadr o) (sd-width d) (sd-height d))))

(define (sd-assert-rect what d want)
  (let ((got (sd-layer-rect d)))
    (sd-msg "SD-RECT " what ": " got " want " want)
    (sd-assert (equal? got want) what ": layer rect " got " instead of " want)))

; ---- calling the filters by argument name -------------------------------------------------

; Defaults of every filter argument; tests override some by name.  Small and quick: the tiny
; models at resolution 64, 3 steps.
(define sd-defaults
  '(("prompt" . "a red apple") ("negative-prompt" . "") ("model" . "") ("seed" . 42)
    ("steps" . 3) ("cfg-scale" . -1) ("sampler" . -1) ("karras" . 0)
    ("timestep-spacing" . -1) ("clip-skip" . 0) ("prediction" . 0) ("resolution" . 64)
    ("width" . 0) ("height" . 0) ("strength" . -1) ("mask-blur" . 4) ("padding" . 32)
    ("masked-content" . 0) ("whole-image" . 0) ("color-match" . 1) ("extend-left" . 0)
    ("extend-top" . 0) ("extend-right" . 0) ("extend-bottom" . 0) ("tile" . 0)))

(define (sd-lookup key alist)
  (let ((p (assoc key alist)))
    (if p (cdr p) (*error-hook* (string-append "no default for argument " key)))))

; Call a plug-in-sd-* procedure: args after run-mode come from `lead` (image and drawable,
; or nothing for the new-image procedure), then every named argument from `overrides`
; (an alist) or sd-defaults.  Returns the procedure's return list.
(define sd-arg-cache '())

; The argument names of a procedure (asked of the PDB once per batch command).
(define (sd-proc-args proc)
  (let ((hit (assoc proc sd-arg-cache)))
    (if hit (cdr hit)
        (let* ((n (nth 6 (gimp-procedural-db-proc-info proc)))
               (names (let loop ((i (- n 1)) (acc '()))
                        (if (< i 0) acc
                            (loop (- i 1)
                                  (cons (cadr (gimp-procedural-db-proc-arg proc i)) acc))))))
          (set! sd-arg-cache (cons (cons proc names) sd-arg-cache))
          names))))

(define (sd-call-mode mode proc lead overrides)
  (let* ((names (list-tail (sd-proc-args proc) (+ 1 (length lead))))
         (args (map (lambda (name)
                      (let ((p (assoc name overrides)))
                        (if p (cdr p) (sd-lookup name sd-defaults))))
                    names)))
    (apply (eval (string->symbol proc)) (cons mode (append lead args)))))

(define (sd-call proc lead overrides)
  (sd-call-mode RUN-NONINTERACTIVE proc lead overrides))

(define (sd-parasite layer)
  (let ((p (sd-try (lambda () (gimp-item-get-parasite layer "gimp-sd-parameters")))))
    (if (eq? (car p) 'ok) (caddr (cadr p)) "")))

(define (sd-status)
  ; (loads calls loaded model pid)
  (plug-in-sd-resident-status RUN-NONINTERACTIVE))
