//go:build !purego

#include "textflag.h"

// func dotAVX2(c, x *float32, n int) float32
TEXT ·dotAVX2(SB), NOSPLIT, $0-28
	MOVQ c+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ n+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	CMPQ CX, $32
	JLT  dot8

dot32:
	VMOVUPS     (SI), Y4
	VMOVUPS     32(SI), Y5
	VMOVUPS     64(SI), Y6
	VMOVUPS     96(SI), Y7
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS 32(DI), Y5, Y1
	VFMADD231PS 64(DI), Y6, Y2
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ        $128, SI
	ADDQ        $128, DI
	SUBQ        $32, CX
	CMPQ        CX, $32
	JGE         dot32

dot8:
	CMPQ        CX, $8
	JLT         reduce
	VMOVUPS     (SI), Y4
	VFMADD231PS (DI), Y4, Y0
	ADDQ        $32, SI
	ADDQ        $32, DI
	SUBQ        $8, CX
	JMP         dot8

reduce:
	VADDPS       Y1, Y0, Y0
	VADDPS       Y3, Y2, Y2
	VADDPS       Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VHADDPS      X0, X0, X0
	VHADDPS      X0, X0, X0
	VZEROUPPER
	MOVSS        X0, ret+24(FP)
	RET

// func firAVX2(dst, x, c *float32, n, taps int)
//
// Each output is summed in order of the taps, with a rounding after every
// product and every sum (no FMA), exactly as firGo does: an output's value
// does not depend on whether it was computed here or there.
TEXT ·firAVX2(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ c+16(FP), DX
	MOVQ n+24(FP), CX
	MOVQ taps+32(FP), BX

block32:
	CMPQ   CX, $32
	JLT    block8
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	MOVQ   DX, R8
	MOVQ   SI, R9
	MOVQ   BX, R10

tap32:
	VBROADCASTSS (R8), Y4
	VMULPS       (R9), Y4, Y5
	VMULPS       32(R9), Y4, Y6
	VMULPS       64(R9), Y4, Y7
	VMULPS       96(R9), Y4, Y8
	VADDPS       Y5, Y0, Y0
	VADDPS       Y6, Y1, Y1
	VADDPS       Y7, Y2, Y2
	VADDPS       Y8, Y3, Y3
	ADDQ         $4, R8
	ADDQ         $4, R9
	DECQ         R10
	JNZ          tap32
	VMOVUPS      Y0, (DI)
	VMOVUPS      Y1, 32(DI)
	VMOVUPS      Y2, 64(DI)
	VMOVUPS      Y3, 96(DI)
	ADDQ         $128, DI
	ADDQ         $128, SI
	SUBQ         $32, CX
	JMP          block32

block8:
	CMPQ   CX, $8
	JLT    done
	VXORPS Y0, Y0, Y0
	MOVQ   DX, R8
	MOVQ   SI, R9
	MOVQ   BX, R10

tap8:
	VBROADCASTSS (R8), Y4
	VMULPS       (R9), Y4, Y5
	VADDPS       Y5, Y0, Y0
	ADDQ         $4, R8
	ADDQ         $4, R9
	DECQ         R10
	JNZ          tap8
	VMOVUPS      Y0, (DI)
	ADDQ         $32, DI
	ADDQ         $32, SI
	SUBQ         $8, CX
	JMP          block8

done:
	VZEROUPPER
	RET

// func splitAVX2(dst, x, c *float32, n, taps int)
//
// Adds to each of n outputs its filter, in order of the taps with a fused
// multiply-add each: 64 outputs at a time in eight registers (enough
// independent sums to keep both FMA units busy), then 32, 16 and 8.
TEXT ·splitAVX2(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ c+16(FP), DX
	MOVQ n+24(FP), CX
	MOVQ taps+32(FP), BX

split64:
	CMPQ CX, $64
	JLT  split32
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS 64(DI), Y2
	VMOVUPS 96(DI), Y3
	VMOVUPS 128(DI), Y4
	VMOVUPS 160(DI), Y5
	VMOVUPS 192(DI), Y6
	VMOVUPS 224(DI), Y7
	MOVQ DX, R8
	MOVQ SI, R9
	MOVQ BX, R10
split64tap:
	VBROADCASTSS (R8), Y8
	VFMADD231PS (R9), Y8, Y0
	VFMADD231PS 32(R9), Y8, Y1
	VFMADD231PS 64(R9), Y8, Y2
	VFMADD231PS 96(R9), Y8, Y3
	VFMADD231PS 128(R9), Y8, Y4
	VFMADD231PS 160(R9), Y8, Y5
	VFMADD231PS 192(R9), Y8, Y6
	VFMADD231PS 224(R9), Y8, Y7
	ADDQ $4, R8
	ADDQ $4, R9
	DECQ R10
	JNZ  split64tap
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	VMOVUPS Y4, 128(DI)
	VMOVUPS Y5, 160(DI)
	VMOVUPS Y6, 192(DI)
	VMOVUPS Y7, 224(DI)
	ADDQ $256, DI
	ADDQ $256, SI
	SUBQ $64, CX
	JMP  split64
split32:
	CMPQ CX, $32
	JLT  split16
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS 64(DI), Y2
	VMOVUPS 96(DI), Y3
	MOVQ DX, R8
	MOVQ SI, R9
	MOVQ BX, R10
split32tap:
	VBROADCASTSS (R8), Y8
	VFMADD231PS (R9), Y8, Y0
	VFMADD231PS 32(R9), Y8, Y1
	VFMADD231PS 64(R9), Y8, Y2
	VFMADD231PS 96(R9), Y8, Y3
	ADDQ $4, R8
	ADDQ $4, R9
	DECQ R10
	JNZ  split32tap
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ $128, DI
	ADDQ $128, SI
	SUBQ $32, CX
split16:
	CMPQ CX, $16
	JLT  split8
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	MOVQ DX, R8
	MOVQ SI, R9
	MOVQ BX, R10
split16tap:
	VBROADCASTSS (R8), Y8
	VFMADD231PS (R9), Y8, Y0
	VFMADD231PS 32(R9), Y8, Y1
	ADDQ $4, R8
	ADDQ $4, R9
	DECQ R10
	JNZ  split16tap
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ $64, DI
	ADDQ $64, SI
	SUBQ $16, CX
split8:
	CMPQ CX, $8
	JLT  splitdone
	VMOVUPS (DI), Y0
	MOVQ DX, R8
	MOVQ SI, R9
	MOVQ BX, R10
split8tap:
	VBROADCASTSS (R8), Y8
	VFMADD231PS (R9), Y8, Y0
	ADDQ $4, R8
	ADDQ $4, R9
	DECQ R10
	JNZ  split8tap
	VMOVUPS Y0, (DI)
	ADDQ $32, DI
	ADDQ $32, SI
	SUBQ $8, CX
splitdone:
	VZEROUPPER
	RET

// func split2AVX2(dst, x, c, dst2, x2, c2 *float32, n, taps int)
//
// splitAVX2 on two filters at once (the phases of a 2/3 table), their
// instructions interleaved: twice the independent sums for short runs,
// each output's sum the very chain splitAVX2 computes.
TEXT ·split2AVX2(SB), NOSPLIT, $0-64
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ c+16(FP), DX
	MOVQ dst2+24(FP), R11
	MOVQ x2+32(FP), R12
	MOVQ c2+40(FP), R13
	MOVQ n+48(FP), CX
	MOVQ taps+56(FP), BX

pair32:
	CMPQ CX, $32
	JLT  pair16
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS 64(DI), Y2
	VMOVUPS 96(DI), Y3
	VMOVUPS (R11), Y4
	VMOVUPS 32(R11), Y5
	VMOVUPS 64(R11), Y6
	VMOVUPS 96(R11), Y7
	MOVQ DX, R8
	MOVQ SI, R9
	MOVQ R13, R14
	MOVQ R12, R15
	MOVQ BX, R10
pair32tap:
	VBROADCASTSS (R8), Y8
	VBROADCASTSS (R14), Y9
	VFMADD231PS (R9), Y8, Y0
	VFMADD231PS (R15), Y9, Y4
	VFMADD231PS 32(R9), Y8, Y1
	VFMADD231PS 32(R15), Y9, Y5
	VFMADD231PS 64(R9), Y8, Y2
	VFMADD231PS 64(R15), Y9, Y6
	VFMADD231PS 96(R9), Y8, Y3
	VFMADD231PS 96(R15), Y9, Y7
	ADDQ $4, R8
	ADDQ $4, R9
	ADDQ $4, R14
	ADDQ $4, R15
	DECQ R10
	JNZ  pair32tap
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	VMOVUPS Y4, (R11)
	VMOVUPS Y5, 32(R11)
	VMOVUPS Y6, 64(R11)
	VMOVUPS Y7, 96(R11)
	ADDQ $128, DI
	ADDQ $128, SI
	ADDQ $128, R11
	ADDQ $128, R12
	SUBQ $32, CX
	JMP  pair32
pair16:
	CMPQ CX, $16
	JLT  pair8
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS (R11), Y2
	VMOVUPS 32(R11), Y3
	MOVQ DX, R8
	MOVQ SI, R9
	MOVQ R13, R14
	MOVQ R12, R15
	MOVQ BX, R10
pair16tap:
	VBROADCASTSS (R8), Y8
	VBROADCASTSS (R14), Y9
	VFMADD231PS (R9), Y8, Y0
	VFMADD231PS (R15), Y9, Y2
	VFMADD231PS 32(R9), Y8, Y1
	VFMADD231PS 32(R15), Y9, Y3
	ADDQ $4, R8
	ADDQ $4, R9
	ADDQ $4, R14
	ADDQ $4, R15
	DECQ R10
	JNZ  pair16tap
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, (R11)
	VMOVUPS Y3, 32(R11)
	ADDQ $64, DI
	ADDQ $64, SI
	ADDQ $64, R11
	ADDQ $64, R12
	SUBQ $16, CX
pair8:
	CMPQ CX, $8
	JLT  pairdone
	VMOVUPS (DI), Y0
	VMOVUPS (R11), Y1
	MOVQ DX, R8
	MOVQ SI, R9
	MOVQ R13, R14
	MOVQ R12, R15
	MOVQ BX, R10
pair8tap:
	VBROADCASTSS (R8), Y8
	VBROADCASTSS (R14), Y9
	VFMADD231PS (R9), Y8, Y0
	VFMADD231PS (R15), Y9, Y1
	ADDQ $4, R8
	ADDQ $4, R9
	ADDQ $4, R14
	ADDQ $4, R15
	DECQ R10
	JNZ  pair8tap
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, (R11)
	ADDQ $32, DI
	ADDQ $32, SI
	ADDQ $32, R11
	ADDQ $32, R12
	SUBQ $8, CX
pairdone:
	VZEROUPPER
	RET
