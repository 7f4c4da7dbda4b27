/* The start-up probe for bench/run: does nothing and exits 0. */
int main(void)
{
    return 0;
}
