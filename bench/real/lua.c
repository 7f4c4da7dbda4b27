/* lua: the Lua 5.4 interpreter (static liblua5.4) running an embedded
 * script: binary trees (allocation, GC, recursion), fannkuch-redux
 * (table indexing, loops), and string work (string.format, concatenation
 * with table.concat, gsub with patterns and a function, string.byte/rep,
 * a word-count table); prints the results and a checksum.  Lua 5.4 seeds
 * its string hashes and math.random from the time and addresses, so the
 * script never prints anything that depends on pairs() order and seeds
 * math.random itself.
 *
 *   lua [SCALE]        SCALE (default 1.0) multiplies the amount of work. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "data.h"

static const char script[] =
    "local scale = ...\n"
    "local function n_of(x, min) local v = math.floor(x * scale) if v < min then v = min end return v end\n"
    "-- binary trees\n"
    "local function bottom_up(d)\n"
    "  if d == 0 then return {} end\n"
    "  d = d - 1\n"
    "  return { bottom_up(d), bottom_up(d) }\n"
    "end\n"
    "local function check(t)\n"
    "  if t[1] then return 1 + check(t[1]) + check(t[2]) end\n"
    "  return 1\n"
    "end\n"
    "local maxd = 16\n"
    "local iters_base = n_of(24, 1)\n"
    "local total = check(bottom_up(maxd + 1))\n"
    "local long = bottom_up(maxd)\n"
    "for d = 4, maxd, 2 do\n"
    "  local iters = iters_base * 2 ^ (maxd - d) // 16\n"
    "  if iters < 1 then iters = 1 end\n"
    "  local c = 0\n"
    "  for _ = 1, iters do c = c + check(bottom_up(d)) end\n"
    "  total = total + c\n"
    "end\n"
    "total = total + check(long)\n"
    "print(string.format('lua trees depth=%d check=%d', maxd, total))\n"
    "-- fannkuch-redux\n"
    "local function fannkuch(n)\n"
    "  local p, q, s, sign, maxflips, sum = {}, {}, {}, 1, 0, 0\n"
    "  for i = 1, n do p[i] = i; q[i] = i; s[i] = i end\n"
    "  repeat\n"
    "    local q1 = p[1]\n"
    "    if q1 ~= 1 then\n"
    "      for i = 2, n do q[i] = p[i] end\n"
    "      local flips = 1\n"
    "      repeat\n"
    "        local qq = q[q1]\n"
    "        if qq == 1 then\n"
    "          sum = sum + sign * flips\n"
    "          if flips > maxflips then maxflips = flips end\n"
    "          break\n"
    "        end\n"
    "        q[q1] = q1\n"
    "        if q1 >= 4 then\n"
    "          local i, j = 2, q1 - 1\n"
    "          repeat q[i], q[j] = q[j], q[i]; i = i + 1; j = j - 1 until i >= j\n"
    "        end\n"
    "        q1 = qq; flips = flips + 1\n"
    "      until false\n"
    "    end\n"
    "    if sign == 1 then\n"
    "      p[2], p[1] = p[1], p[2]; sign = -1\n"
    "    else\n"
    "      p[2], p[3] = p[3], p[2]; sign = 1\n"
    "      for i = 3, n do\n"
    "        local sx = s[i]\n"
    "        if sx ~= 1 then s[i] = sx - 1; break end\n"
    "        if i == n then return sum, maxflips end\n"
    "        s[i] = i\n"
    "        local t = p[1]; for j = 1, i do p[j] = p[j + 1] end; p[i + 1] = t\n"
    "      end\n"
    "    end\n"
    "  until false\n"
    "end\n"
    "local fn = scale >= 0.5 and 9 or 8\n"
    "local fsum, fmax = 0, 0\n"
    "for _ = 1, n_of(3, 1) do local a, b = fannkuch(fn); fsum = fsum + a; fmax = b end\n"
    "print(string.format('lua fannkuch n=%d checksum=%d maxflips=%d', fn, fsum, fmax))\n"
    "-- string work\n"
    "math.randomseed(42)\n"
    "local words = {'alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta', 'eta', 'theta'}\n"
    "local lines = {}\n"
    "local nlines = n_of(24000, 10)\n"
    "for i = 1, nlines do\n"
    "  local parts = {}\n"
    "  for j = 1, 8 do parts[j] = words[math.random(#words)] .. (i * j % 97) end\n"
    "  lines[i] = string.format('%05d: %s; %.3f', i, table.concat(parts, ' '), i / 7)\n"
    "end\n"
    "local text = table.concat(lines, '\\n')\n"
    "local counts, h = {}, 0\n"
    "for w in text:gmatch('%a+') do counts[w] = (counts[w] or 0) + 1 end\n"
    "local keys = {}\n"
    "for k in pairs(counts) do keys[#keys + 1] = k end\n"
    "table.sort(keys)\n"
    "local summary = {}\n"
    "for _, k in ipairs(keys) do summary[#summary + 1] = k .. '=' .. counts[k] end\n"
    "local up = text:gsub('(%a+)(%d+)', function(w, d) return w:upper() .. '#' .. (tonumber(d) * 3) end)\n"
    "up = up:gsub('%s+', '_')\n"
    "for i = 1, #up, 7 do h = (h * 31 + up:byte(i)) % 4294967296 end\n"
    "local rev = {}\n"
    "for i = 1, math.min(#lines, 2000) do rev[i] = lines[i]:reverse():sub(1, 20):rep(2) end\n"
    "local joined = table.concat(rev, ',')\n"
    "for i = 1, #joined, 3 do h = (h * 33 + joined:byte(i)) % 4294967296 end\n"
    "print(string.format('lua strings lines=%d bytes=%d words=%s hash=%08x', nlines, #text,\n"
    "      table.concat(summary, ','), h))\n";

int main(int argc, char **argv)
{
    double scale = real_scale(argc, argv);
    lua_State *L = luaL_newstate();
    if (!L)
        return 1;
    luaL_openlibs(L);
    if (luaL_loadbuffer(L, script, sizeof script - 1, "=bench") != LUA_OK) {
        printf("lua: %s\n", lua_tostring(L, -1));
        return 1;
    }
    lua_pushnumber(L, scale);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        printf("lua: %s\n", lua_tostring(L, -1));
        return 1;
    }
    lua_close(L);
    return 0;
}
