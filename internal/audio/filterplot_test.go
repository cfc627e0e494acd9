package audio

import (
	"bufio"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"strings"
	"testing"
)

// The plot of the resampler's response in docs/audio.md, drawn with the
// standard library alone (scripts/audio-filter-plot.sh):
//
//	go test -count=1 -run '^TestFilterPlot$' ./internal/audio/ -args -plot "$PWD/docs/audio-filter.png"
//
// The curves are measured, not computed from the coefficients: a sine at
// each frequency goes through the resampler and its output level is the
// gain (above 4 kHz, the level of what folds back into the band).

var plotPath = flag.String("plot", "", "write the resampler's response as a PNG to this file")

func TestFilterPlot(t *testing.T) {
	if *plotPath == "" {
		t.Skip("draws docs/audio-filter.png: run with -args -plot FILE (scripts/audio-filter-plot.sh)")
	}
	type curve struct {
		name string
		col  color.RGBA
		f, g []float64
	}
	measure := func(rate int, from, to, step float64) curve {
		var c curve
		for f := from; f <= to; f += step {
			c.f = append(c.f, f)
			c.g = append(c.g, max(-160, toneGain(t, rate, f)))
		}
		return c
	}
	var soxr curve
	for _, line := range strings.Split(strings.TrimSpace(string(fixture(t, "soxr-response.txt"))), "\n") {
		var f, g float64
		fmt.Sscan(line, &f, &g)
		if !math.IsInf(g, 0) {
			soxr.f, soxr.g = append(soxr.f, f), append(soxr.g, g)
		}
	}
	soxr.name, soxr.col = "SOXR VHQ (FFMPEG, PRECISION 28), 22.05 KHZ", color.RGBA{200, 30, 30, 255}

	p := newPlot(1000, 760)
	// Top: the whole band of a 44.1 kHz source; bottom: the edge.
	top := p.panel(image.Rect(90, 40, 970, 390), 0, 22050, 2000, -160, 10, 20, "FREQUENCY OF A SINE IN A 44.1 KHZ SOURCE (HZ)", "GAIN (DB)")
	c44 := measure(44100, 0, 22050, 10)
	c44.name, c44.col = "CALLCAST, 44.1 KHZ SOURCE", color.RGBA{30, 90, 200, 255}
	top.hline(-90, color.RGBA{120, 120, 120, 255}, "-90 DB: ALIAS REJECTION REQUIRED FROM 4 KHZ")
	top.curve(c44.f, c44.g, c44.col)
	top.legend([]string{c44.name}, []color.RGBA{c44.col}, false)

	bot := p.panel(image.Rect(90, 450, 970, 700), 3300, 4100, 100, -120, 5, 20, "FREQUENCY (HZ), THE EDGE OF THE BAND", "GAIN (DB)")
	c22 := measure(22050, 3300, 4100, 2)
	c22.name, c22.col = "CALLCAST, 22.05 KHZ SOURCE", color.RGBA{30, 90, 200, 255}
	bot.hline(-90, color.RGBA{120, 120, 120, 255}, "")
	bot.vline(3400, color.RGBA{120, 120, 120, 255}, "3.4 KHZ: FLAT TO 0.1 DB BELOW")
	bot.curve(c22.f, c22.g, c22.col)
	for i := range soxr.f {
		bot.dot(soxr.f[i], soxr.g[i], soxr.col)
	}
	bot.legend([]string{c22.name, soxr.name}, []color.RGBA{c22.col, soxr.col}, true)

	f, err := os.Create(*plotPath)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	if err := png.Encode(w, p.img); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", *plotPath)
}

// plot is an RGBA image with axes, lines, dots and 5×7 capital text.
type plot struct{ img *image.RGBA }

type panel struct {
	p              *plot
	r              image.Rectangle
	x0, x1, y0, y1 float64
}

func newPlot(w, h int) *plot {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	return &plot{img: img}
}

var (
	black = color.RGBA{0, 0, 0, 255}
	grid  = color.RGBA{225, 225, 225, 255}
)

func (p *plot) panel(r image.Rectangle, x0, x1, xstep, y0, y1, ystep float64, xlabel, ylabel string) *panel {
	q := &panel{p: p, r: r, x0: x0, x1: x1, y0: y0, y1: y1}
	for x := math.Ceil(x0/xstep) * xstep; x <= x1; x += xstep {
		px, _ := q.at(x, y0)
		p.line(px, r.Min.Y, px, r.Max.Y, grid)
		p.text(px-len(label(x))*3, r.Max.Y+6, label(x), black)
	}
	for y := math.Ceil(y0/ystep) * ystep; y <= y1; y += ystep {
		_, py := q.at(x0, y)
		p.line(r.Min.X, py, r.Max.X, py, grid)
		p.text(r.Min.X-6-6*len(label(y)), py-3, label(y), black)
	}
	p.line(r.Min.X, r.Min.Y, r.Max.X, r.Min.Y, black)
	p.line(r.Min.X, r.Max.Y, r.Max.X, r.Max.Y, black)
	p.line(r.Min.X, r.Min.Y, r.Min.X, r.Max.Y, black)
	p.line(r.Max.X, r.Min.Y, r.Max.X, r.Max.Y, black)
	p.text((r.Min.X+r.Max.X)/2-3*len(xlabel), r.Max.Y+20, xlabel, black)
	p.text(r.Min.X-80, r.Min.Y-14, ylabel, black)
	return q
}

func label(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprint(int(v))
	}
	return fmt.Sprint(v)
}

// at maps data coordinates to pixels.
func (q *panel) at(x, y float64) (int, int) {
	px := float64(q.r.Min.X) + (x-q.x0)/(q.x1-q.x0)*float64(q.r.Dx())
	py := float64(q.r.Max.Y) - (y-q.y0)/(q.y1-q.y0)*float64(q.r.Dy())
	return int(math.Round(px)), int(math.Round(py))
}

func (q *panel) clip(x, y int) bool { return image.Pt(x, y).In(q.r.Inset(-1)) }

func (q *panel) curve(xs, ys []float64, c color.RGBA) {
	for i := 1; i < len(xs); i++ {
		ax, ay := q.at(xs[i-1], ys[i-1])
		bx, by := q.at(xs[i], ys[i])
		q.p.lineClip(ax, ay, bx, by, c, q)
		q.p.lineClip(ax, ay+1, bx, by+1, c, q)
	}
}

func (q *panel) dot(x, y float64, c color.RGBA) {
	px, py := q.at(x, y)
	for dy := -3; dy <= 3; dy++ {
		for dx := -3; dx <= 3; dx++ {
			if dx*dx+dy*dy <= 9 && q.clip(px+dx, py+dy) {
				q.p.img.SetRGBA(px+dx, py+dy, c)
			}
		}
	}
}

func (q *panel) hline(y float64, c color.RGBA, text string) {
	_, py := q.at(q.x0, y)
	for x := q.r.Min.X; x < q.r.Max.X; x += 8 {
		q.p.line(x, py, min(x+4, q.r.Max.X), py, c)
	}
	q.p.text(q.r.Max.X-6*len(text)-4, py-10, text, c)
}

func (q *panel) vline(x float64, c color.RGBA, text string) {
	px, _ := q.at(x, q.y0)
	for y := q.r.Min.Y; y < q.r.Max.Y; y += 8 {
		q.p.line(px, y, px, min(y+4, q.r.Max.Y), c)
	}
	q.p.text(px+4, q.r.Max.Y-12, text, c)
}

// legend lists the curves at the top left of the panel, or the bottom
// left.
func (q *panel) legend(names []string, cols []color.RGBA, bottom bool) {
	for i, n := range names {
		y := q.r.Min.Y + 10 + 14*i
		if bottom {
			y = q.r.Max.Y - 30 - 14*(len(names)-i)
		}
		x := q.r.Min.X + 10
		q.p.line(x, y+3, x+20, y+3, cols[i])
		q.p.line(x, y+4, x+20, y+4, cols[i])
		q.p.text(x+26, y, n, cols[i])
	}
}

func (p *plot) line(x0, y0, x1, y1 int, c color.RGBA) { p.lineClip(x0, y0, x1, y1, c, nil) }

// lineClip draws a line (Bresenham), inside q's frame if q is not nil.
func (p *plot) lineClip(x0, y0, x1, y1 int, c color.RGBA, q *panel) {
	dx, dy := iabs(x1-x0), -iabs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		if q == nil || q.clip(x0, y0) {
			p.img.SetRGBA(x0, y0, c)
		}
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func iabs(v int) int { return max(v, -v) }

func sign(v int) int {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

// text draws s in a 5×7 font, 6 pixels a character; lower case is drawn
// as capitals.
func (p *plot) text(x, y int, s string, c color.RGBA) {
	for _, r := range strings.ToUpper(s) {
		g, ok := glyphs[r]
		if !ok {
			g = glyphs['?']
		}
		for row, bits := range g {
			for col, b := range bits {
				if b == '#' {
					p.img.SetRGBA(x+col, y+row, c)
				}
			}
		}
		x += 6
	}
}

var glyphs = map[rune][7]string{
	' ': {".....", ".....", ".....", ".....", ".....", ".....", "....."},
	'0': {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."},
	'1': {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."},
	'2': {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"},
	'3': {"#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."},
	'4': {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."},
	'5': {"#####", "#....", "####.", "....#", "....#", "#...#", ".###."},
	'6': {"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."},
	'7': {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."},
	'8': {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."},
	'9': {".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."},
	'A': {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'B': {"####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."},
	'C': {".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."},
	'D': {"###..", "#..#.", "#...#", "#...#", "#...#", "#..#.", "###.."},
	'E': {"#####", "#....", "#....", "####.", "#....", "#....", "#####"},
	'F': {"#####", "#....", "#....", "####.", "#....", "#....", "#...."},
	'G': {".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"},
	'H': {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'I': {".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."},
	'J': {"..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."},
	'K': {"#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"},
	'L': {"#....", "#....", "#....", "#....", "#....", "#....", "#####"},
	'M': {"#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"},
	'N': {"#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"},
	'O': {".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."},
	'P': {"####.", "#...#", "#...#", "####.", "#....", "#....", "#...."},
	'Q': {".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"},
	'R': {"####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"},
	'S': {".####", "#....", "#....", ".###.", "....#", "....#", "####."},
	'T': {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."},
	'U': {"#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."},
	'V': {"#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."},
	'W': {"#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."},
	'X': {"#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"},
	'Y': {"#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."},
	'Z': {"#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"},
	'-': {".....", ".....", ".....", "#####", ".....", ".....", "....."},
	'+': {".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."},
	'.': {".....", ".....", ".....", ".....", ".....", ".##..", ".##.."},
	',': {".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."},
	':': {".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."},
	'(': {"...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."},
	')': {".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."},
	'/': {".....", "....#", "...#.", "..#..", ".#...", "#....", "....."},
	'?': {".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."},
}
