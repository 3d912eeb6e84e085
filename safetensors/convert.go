package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
)

// F16ToFloat32 converts an IEEE 754 half-precision value to float32
// exactly (including subnormals, infinities and NaN).
func F16ToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf or NaN
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0:
		if mant == 0 {
			return math.Float32frombits(sign)
		}
		// Subnormal: value = mant × 2^-24.
		f := float32(mant) * (1.0 / (1 << 24))
		if sign != 0 {
			f = -f
		}
		return f
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// Float32ToF16 converts f to half precision, rounding to nearest even;
// values too large become ±Inf and NaN stays NaN.
func Float32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00 // quiet NaN
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign // underflow to ±0
		}
		// Subnormal half: shift the mantissa (with its implicit 1) right.
		m := mant | 0x800000
		shift := uint32(14 - e)
		half := m >> shift
		rem := m & (1<<shift - 1)
		mid := uint32(1) << (shift - 1)
		if rem > mid || (rem == mid && half&1 == 1) {
			half++
		}
		return sign | uint16(half)
	}
	half := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && half&1 == 1) {
		half++ // may carry into the exponent, which is correct (up to Inf)
	}
	return sign | uint16(half)
}

// BF16ToFloat32 converts a bfloat16 value to float32 exactly.
func BF16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// Float32ToBF16 converts f to bfloat16, rounding to nearest even; NaN stays
// NaN.
func Float32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40 // quiet NaN
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// Float32s decodes a floating-point tensor (F32, F16, BF16 or F64) into
// float32 values.
func (t Tensor) Float32s() ([]float32, error) {
	size := t.DType.Size()
	if size == 0 || len(t.Data)%size != 0 {
		return nil, fmt.Errorf("tensor %q: %d bytes is not a whole number of %s elements", t.Name, len(t.Data), t.DType)
	}
	n := len(t.Data) / size
	out := make([]float32, n)
	d := t.Data
	switch t.DType {
	case F32:
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(d[4*i:]))
		}
	case F16:
		for i := range out {
			out[i] = F16ToFloat32(binary.LittleEndian.Uint16(d[2*i:]))
		}
	case BF16:
		for i := range out {
			out[i] = BF16ToFloat32(binary.LittleEndian.Uint16(d[2*i:]))
		}
	case F64:
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(d[8*i:])))
		}
	default:
		return nil, fmt.Errorf("tensor %q: dtype %s is not floating point", t.Name, t.DType)
	}
	return out, nil
}

// Int64s decodes an integer tensor (I64, I32, I16, I8, U8, U32, BOOL) into
// int64 values.
func (t Tensor) Int64s() ([]int64, error) {
	size := t.DType.Size()
	if size == 0 || len(t.Data)%size != 0 {
		return nil, fmt.Errorf("tensor %q: %d bytes is not a whole number of %s elements", t.Name, len(t.Data), t.DType)
	}
	out := make([]int64, len(t.Data)/size)
	d := t.Data
	for i := range out {
		switch t.DType {
		case I64:
			out[i] = int64(binary.LittleEndian.Uint64(d[8*i:]))
		case I32:
			out[i] = int64(int32(binary.LittleEndian.Uint32(d[4*i:])))
		case U32:
			out[i] = int64(binary.LittleEndian.Uint32(d[4*i:]))
		case I16:
			out[i] = int64(int16(binary.LittleEndian.Uint16(d[2*i:])))
		case U16:
			out[i] = int64(binary.LittleEndian.Uint16(d[2*i:]))
		case I8:
			out[i] = int64(int8(d[i]))
		case U8, Bool:
			out[i] = int64(d[i])
		default:
			return nil, fmt.Errorf("tensor %q: dtype %s is not an integer type", t.Name, t.DType)
		}
	}
	return out, nil
}

// FromFloat32s returns a tensor named name of the given dtype (F32, F16 or
// BF16) and shape holding values. It fails if the number of values does not
// match the shape.
func FromFloat32s(name string, dtype DType, shape []int64, values []float32) (Tensor, error) {
	n, err := checkedNumel(shape, 8)
	if err != nil {
		return Tensor{}, fmt.Errorf("tensor %q: %w", name, err)
	}
	if n != int64(len(values)) {
		return Tensor{}, fmt.Errorf("tensor %q: %d values for shape %v", name, len(values), shape)
	}
	t := Tensor{Name: name, DType: dtype, Shape: append([]int64{}, shape...)}
	switch dtype {
	case F32:
		t.Data = make([]byte, 4*len(values))
		for i, v := range values {
			binary.LittleEndian.PutUint32(t.Data[4*i:], math.Float32bits(v))
		}
	case F16:
		t.Data = make([]byte, 2*len(values))
		for i, v := range values {
			binary.LittleEndian.PutUint16(t.Data[2*i:], Float32ToF16(v))
		}
	case BF16:
		t.Data = make([]byte, 2*len(values))
		for i, v := range values {
			binary.LittleEndian.PutUint16(t.Data[2*i:], Float32ToBF16(v))
		}
	default:
		return Tensor{}, fmt.Errorf("tensor %q: cannot encode float32 values as %s", name, dtype)
	}
	return t, nil
}

// FromInt64s returns an I64 tensor named name with the given shape.
func FromInt64s(name string, shape []int64, values []int64) (Tensor, error) {
	n, err := checkedNumel(shape, 8)
	if err != nil {
		return Tensor{}, fmt.Errorf("tensor %q: %w", name, err)
	}
	if n != int64(len(values)) {
		return Tensor{}, fmt.Errorf("tensor %q: %d values for shape %v", name, len(values), shape)
	}
	t := Tensor{Name: name, DType: I64, Shape: append([]int64{}, shape...), Data: make([]byte, 8*len(values))}
	for i, v := range values {
		binary.LittleEndian.PutUint64(t.Data[8*i:], uint64(v))
	}
	return t, nil
}
