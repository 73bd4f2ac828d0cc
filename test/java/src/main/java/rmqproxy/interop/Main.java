package rmqproxy.interop;
public final class Main { public static void main(String[] a) {} }
