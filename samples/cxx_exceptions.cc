// C++ runtime under translation: exceptions unwound through many frames
// (libgcc's unwinder, which runs rdsspq), RTTI, iostreams, std::regex and
// the standard algorithms.  Deterministic output; compared byte for byte
// with the native run (tests/test_samples.py).
#include <algorithm>
#include <exception>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <numeric>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <typeinfo>
#include <vector>

namespace {

struct Shape {
    virtual ~Shape() = default;
    virtual double area() const = 0;
    virtual std::string name() const = 0;
};

struct Rect : Shape {
    double w, h;
    Rect(double w_, double h_) : w(w_), h(h_) {}
    double area() const override { return w * h; }
    std::string name() const override { return "rect"; }
};

struct Square : Rect {
    explicit Square(double s) : Rect(s, s) {}
    std::string name() const override { return "square"; }
};

struct Circle : Shape {
    double r;
    explicit Circle(double r_) : r(r_) {}
    double area() const override { return 3.14159265358979 * r * r; }
    std::string name() const override { return "circle"; }
};

struct DepthError : std::runtime_error {
    int depth;
    DepthError(const std::string &what, int d) : std::runtime_error(what), depth(d) {}
};

int destroyed = 0;

struct Guard {
    int id;
    explicit Guard(int i) : id(i) {}
    ~Guard() { destroyed += id; }
};

int recurse(int depth, int limit) {
    Guard g(depth);
    if (depth == limit)
        throw DepthError("bottom reached at " + std::to_string(depth), depth);
    return recurse(depth + 1, limit) + 1;
}

void rethrower(int n) {
    try {
        recurse(0, n);
    } catch (std::runtime_error &e) {
        std::cout << "  rethrowing: " << e.what() << "\n";
        throw;
    }
}

std::exception_ptr captured(int which) {
    try {
        switch (which) {
        case 0: throw std::out_of_range("index 7 out of range");
        case 1: throw std::invalid_argument("not a number");
        case 2: throw 42;
        default: return nullptr;
        }
    } catch (...) {
        return std::current_exception();
    }
}

void exceptions() {
    std::cout << "== exceptions\n";
    for (int limit : {1, 10, 50}) {
        destroyed = 0;
        try {
            rethrower(limit);
        } catch (const std::exception &e) {   // caught by base class
            const DepthError *d = dynamic_cast<const DepthError *>(&e);
            std::cout << "  caught " << e.what() << " depth=" << (d ? d->depth : -1)
                      << " destroyed=" << destroyed << "\n";
        }
    }
    // nested try blocks, the inner one rethrowing a different type
    try {
        try {
            std::vector<int> v(3);
            (void)v.at(10);
        } catch (const std::out_of_range &) {
            std::cout << "  inner: out_of_range\n";
            throw std::logic_error("converted");
        }
    } catch (const std::logic_error &e) {
        std::cout << "  outer: " << e.what() << "\n";
    }
    for (int i = 0; i < 4; i++) {
        std::exception_ptr p = captured(i);
        if (!p) {
            std::cout << "  ptr " << i << ": none\n";
            continue;
        }
        try {
            std::rethrow_exception(p);
        } catch (const std::invalid_argument &e) {
            std::cout << "  ptr " << i << ": invalid_argument " << e.what() << "\n";
        } catch (const std::exception &e) {
            std::cout << "  ptr " << i << ": exception " << e.what() << "\n";
        } catch (int v) {
            std::cout << "  ptr " << i << ": int " << v << "\n";
        }
    }
    int total = 0;
    for (int i = 0; i < 200; i++) {   // many throws: the unwinder's caches stay sound
        try {
            if (i % 3 == 0) throw i;
            total += i;
        } catch (int v) {
            total -= v;
        }
    }
    std::cout << "  loop total " << total << "\n";
}

void rtti() {
    std::cout << "== rtti\n";
    std::vector<std::unique_ptr<Shape>> shapes;
    shapes.emplace_back(new Rect(2, 3.5));
    shapes.emplace_back(new Square(4));
    shapes.emplace_back(new Circle(1.5));
    for (const auto &s : shapes) {
        const Shape &ref = *s;
        std::cout << "  " << std::setw(7) << std::left << s->name() << std::right
                  << " typeid=" << typeid(ref).name()
                  << " rect?=" << (dynamic_cast<Rect *>(s.get()) != nullptr)
                  << " square?=" << (dynamic_cast<Square *>(s.get()) != nullptr)
                  << " area=" << std::fixed << std::setprecision(3) << s->area() << "\n";
    }
    try {
        Circle c(1);
        Shape &sh = c;
        (void)dynamic_cast<Rect &>(sh);
    } catch (const std::bad_cast &e) {
        std::cout << "  bad_cast caught (" << typeid(e).name() << ")\n";
    }
    std::cout << "  typeid(int)=" << typeid(int).name() << " typeid(double*)="
              << typeid(double *).name() << "\n";
}

void streams() {
    std::cout << "== iostreams\n";
    std::ostringstream os;
    os << std::hex << std::showbase << 255 << " " << std::oct << 64 << " " << std::dec
       << std::setw(8) << std::setfill('*') << 42 << std::setfill(' ');
    std::cout << "  " << os.str() << "\n";
    std::cout << "  " << std::scientific << std::setprecision(4) << 12345.6789 << " "
              << std::fixed << std::setprecision(2) << 3.14159 << " "
              << std::defaultfloat << 1e-5 << " " << std::boolalpha << true << "\n";
    std::istringstream is("17 2.5 word -3");
    int a, d;
    double b;
    std::string c;
    is >> a >> b >> c >> d;
    std::cout << "  parsed " << a << "|" << b << "|" << c << "|" << d << "\n";
}

void regexes() {
    std::cout << "== regex\n";
    const std::string text = "alice=31, bob=27; carol=45 dave=19";
    std::regex pair(R"((\w+)=(\d+))");
    int sum = 0;
    for (auto it = std::sregex_iterator(text.begin(), text.end(), pair);
         it != std::sregex_iterator(); ++it) {
        std::cout << "  " << (*it)[1] << " -> " << (*it)[2] << "\n";
        sum += std::stoi((*it)[2]);
    }
    std::cout << "  sum " << sum << "\n";
    std::cout << "  " << std::regex_replace(text, pair, "$2:$1") << "\n";
    std::smatch m;
    std::string date = "2024-02-29";
    if (std::regex_match(date, m, std::regex(R"((\d{4})-(\d{2})-(\d{2}))")))
        std::cout << "  date y=" << m[1] << " m=" << m[2] << " d=" << m[3] << "\n";
    std::cout << "  match? " << std::regex_match("abc", std::regex("a.c")) << " "
              << std::regex_search("xyz", std::regex("b")) << "\n";
    try {
        std::regex bad("(unclosed");
    } catch (const std::regex_error &e) {
        std::cout << "  regex_error code " << e.code() << "\n";
    }
}

void algorithms() {
    std::cout << "== algorithms\n";
    std::vector<int> v;
    unsigned x = 12345;
    for (int i = 0; i < 60; i++) {
        x = x * 1103515245u + 12345u;
        v.push_back(static_cast<int>((x >> 16) % 50));
    }
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    std::cout << "  unique sorted (" << v.size() << "):";
    for (int e : v) std::cout << " " << e;
    std::cout << "\n  accumulate " << std::accumulate(v.begin(), v.end(), 0) << "\n";
    std::map<std::string, int> words;
    std::istringstream in("the quick brown fox jumps over the lazy dog the end fox");
    for (std::string w; in >> w;) words[w]++;
    int total = std::accumulate(words.begin(), words.end(), 0,
                                [](int acc, const auto &kv) { return acc + kv.second; });
    std::cout << "  words " << words.size() << " total " << total << ":";
    for (const auto &kv : words) std::cout << " " << kv.first << "=" << kv.second;
    std::vector<std::pair<int, std::string>> by_count;
    for (const auto &kv : words) by_count.emplace_back(-kv.second, kv.first);
    std::stable_sort(by_count.begin(), by_count.end());
    std::cout << "\n  most frequent: " << by_count.front().second << " ("
              << -by_count.front().first << ")\n";
}

}  // namespace

int main() {
    exceptions();
    rtti();
    streams();
    regexes();
    algorithms();
    try {
        throw std::runtime_error("final");
    } catch (const std::runtime_error &e) {
        std::cout << "done: " << e.what() << std::endl;
    }
    return 0;
}
