; sd-batch.scm - a Script-Fu batch example for gimp-sd: run one of the filters over every
; PNG/JPEG file of a folder and save the results into another folder.
;
;   gimp-console-2.10 -i \
;       -b '(begin (load "tools/examples/sd-batch.scm")
;                  (sd-batch-denoise "/photos/in" "/photos/out" ""))' \
;       -b '(gimp-quit 0)'
;
; (Each -b runs in a fresh Script-Fu interpreter, so load and call in the same -b.)
; Each file is loaded, the filter adds its result as a new layer, the image is flattened and
; saved under the same name in the output folder.  The model "" is the first model of the
; sd-models folder of your GIMP profile (or give a name or an absolute path).

(define (sd-batch-files dir)
  (append (cadr (file-glob (string-append dir "/*.png") 1))
          (cadr (file-glob (string-append dir "/*.jpg") 1))
          (cadr (file-glob (string-append dir "/*.jpeg") 1))))

(define (sd-batch-basename path)
  (car (last (strbreakup path "/"))))

(define (sd-batch-save img out-dir file)
  (let ((flat (car (gimp-image-flatten img)))
        (out (string-append out-dir "/" (sd-batch-basename file))))
    (gimp-file-save RUN-NONINTERACTIVE img flat out out)
    (gimp-image-delete img)
    out))

; Denoise: strength -1 = chosen from the estimated noise level of each photo.
(define (sd-batch-denoise in-dir out-dir model)
  (for-each
   (lambda (file)
     (let* ((img (car (gimp-file-load RUN-NONINTERACTIVE file file)))
            (drw (car (gimp-image-get-active-drawable img))))
       ;; prompt negative model seed steps cfg sampler karras spacing clip-skip prediction
       ;; resolution, then denoise's own: strength tile
       (plug-in-sd-denoise RUN-NONINTERACTIVE img drw
                           "a sharp, clean photo" "noise, grain, blurry" model
                           -1 0 -1 -1 0 -1 0 0 0
                           -1 0)
       (gimp-message (string-append "sd-batch: " (sd-batch-save img out-dir file)))))
   (sd-batch-files in-dir)))

; img2img: re-imagine every picture at strength 0.5 with the same prompt and seed.
(define (sd-batch-img2img in-dir out-dir model prompt seed)
  (for-each
   (lambda (file)
     (let* ((img (car (gimp-file-load RUN-NONINTERACTIVE file file)))
            (drw (car (gimp-image-get-active-drawable img))))
       ;; ... resolution, then img2img's own: strength mask-blur padding
       (plug-in-sd-img2img RUN-NONINTERACTIVE img drw
                           prompt "blurry, low quality" model
                           seed 0 -1 -1 0 -1 0 0 0
                           0.5 4 32)
       (gimp-message (string-append "sd-batch: " (sd-batch-save img out-dir file)))))
   (sd-batch-files in-dir)))
